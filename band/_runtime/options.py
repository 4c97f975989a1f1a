"""A service's runtime knobs: from its settings, else the environment, else defaults.

A value that is not a number, or out of range, is a :class:`~band.errors.ConfigError`
naming where it came from (the setting or the ``BAND_*`` variable) at start; ``0`` is a
value like any other (``drain_timeout: 0`` stops without waiting), never "unset".
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from .._core.app import App
from ..errors import ConfigError

DEFAULT_MAX_INFLIGHT = 256
DEFAULT_DRAIN_TIMEOUT_S = 10.0
DEFAULT_CALL_TIMEOUT_S = 60.0  # a hung call is cut here, so it cannot hold a slot forever


def _knob(settings: Mapping[str, object], env: Mapping[str, str], setting: str, variable: str,
          kind: type[int] | type[float], default: float, minimum: float, above: bool = False) -> float:
    """``setting`` from the service's config, else ``variable`` from the environment, else ``default``."""
    raw: object = settings.get(setting)
    where = f"setting {setting!r}"
    if raw is None or raw == "":
        raw, where = env.get(variable), f"${variable}"
    if raw is None or raw == "":
        return default
    try:
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            raise TypeError(raw)
        value = kind(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be {'a whole number' if kind is int else 'a number'}, got {raw!r}") from None
    if value < minimum or (above and value == minimum):
        raise ConfigError(f"{where} must be {'above' if above else 'at least'} {minimum:g}, got {raw!r}")
    return value


@dataclass(frozen=True)
class ServiceOptions:
    """``max_inflight``, ``drain_timeout``, ``call_timeout`` (settings, or BAND_* env)."""

    max_inflight: int = DEFAULT_MAX_INFLIGHT
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S  # RPC methods, enrichers, listeners

    @classmethod
    def from_app(cls, app: App, env: Mapping[str, str] | None = None) -> ServiceOptions:
        """Raises:
            ConfigError: a value that is not a number or is out of range, naming its source."""
        env = os.environ if env is None else env
        settings = app.settings
        return cls(
            max_inflight=int(_knob(settings, env, "max_inflight", "BAND_MAX_INFLIGHT", int, DEFAULT_MAX_INFLIGHT, 1)),
            drain_timeout_s=_knob(settings, env, "drain_timeout", "BAND_DRAIN_TIMEOUT", float, DEFAULT_DRAIN_TIMEOUT_S, 0),
            call_timeout_s=_knob(settings, env, "call_timeout", "BAND_CALL_TIMEOUT", float, DEFAULT_CALL_TIMEOUT_S, 0, above=True),
        )


__all__ = ["DEFAULT_CALL_TIMEOUT_S", "DEFAULT_DRAIN_TIMEOUT_S", "DEFAULT_MAX_INFLIGHT", "ServiceOptions"]
