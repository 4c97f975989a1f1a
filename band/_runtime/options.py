"""A service's runtime knobs: from its settings, else the environment, else defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .._core.app import App

DEFAULT_MAX_INFLIGHT = 256
DEFAULT_DRAIN_TIMEOUT_S = 10.0
DEFAULT_CALL_TIMEOUT_S = 60.0  # a hung call is cut here, so it cannot hold a slot forever


@dataclass(frozen=True)
class ServiceOptions:
    """``max_inflight``, ``drain_timeout``, ``call_timeout`` (settings, or BAND_* env)."""

    max_inflight: int = DEFAULT_MAX_INFLIGHT
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S  # RPC methods, enrichers, listeners

    @classmethod
    def from_app(cls, app: App) -> "ServiceOptions":
        env = os.environ
        return cls(
            max_inflight=int(app.settings.get("max_inflight") or env.get("BAND_MAX_INFLIGHT") or DEFAULT_MAX_INFLIGHT),
            drain_timeout_s=float(
                app.settings.get("drain_timeout") or env.get("BAND_DRAIN_TIMEOUT") or DEFAULT_DRAIN_TIMEOUT_S
            ),
            call_timeout_s=float(
                app.settings.get("call_timeout") or env.get("BAND_CALL_TIMEOUT") or DEFAULT_CALL_TIMEOUT_S
            ),
        )


__all__ = ["ServiceOptions", "DEFAULT_MAX_INFLIGHT", "DEFAULT_DRAIN_TIMEOUT_S", "DEFAULT_CALL_TIMEOUT_S"]
