"""The panel's settings, from the environment and ``band panel``'s flags."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..runtime import dlq_retention

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
# Beyond localhost a secret must resist guessing: at least this many characters, and this
# many different ones (no "xxxxxxxxxxxxxxxx"). secrets.token_urlsafe(24) gives 32 characters,
# 192 random bits; failed logins are rate-limited besides (band/panel/throttle.py).
MIN_SECRET_CHARS = 16
MIN_DISTINCT_CHARS = 8
MAKE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


class PanelConfigError(ConfigError):
    """The panel cannot start as configured; the message says what to set."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def strong(secret: str) -> bool:
    """Long enough, and varied enough, to be offered beyond this machine."""
    return len(secret) >= MIN_SECRET_CHARS and len(set(secret)) >= MIN_DISTINCT_CHARS


@dataclass(frozen=True)
class PanelConfig:
    """Where the panel listens, how it authenticates and what it watches."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    nats_url: str | None = None
    token: str = ""  # PANEL_TOKEN; generated for a loopback panel when none is set
    user: str = ""  # PANEL_USER + PANEL_PASSWORD: basic-auth credentials
    password: str = ""
    token_generated: bool = False
    edge_urls: tuple[str, ...] = ("http://127.0.0.1:8080",)
    control_socket: Path | None = None  # band up's supervisor socket
    interval_s: float = 2.0  # sampling period of $SRV.STATS, the edge's /metrics, JetStream
    history: int = 1800  # samples kept (an hour at 2 s)
    rpc_timeout_s: float = 5.0
    tail_rate: int = 50  # events per second a browser gets before the tail samples
    session_ttl_s: float = 12 * 3600.0
    login_burst: int = 10  # failed logins an address may make at once (band/panel/throttle.py)
    login_refill_s: float = 6.0  # then one more every this many seconds
    cookie_secure: bool = False
    store_service: str = "store"
    stream_count_limit: int = 100_000  # events read from the stream for the 24 h chart without a store

    def check(self) -> None:
        """Refuse to serve beyond localhost without credentials someone chose."""
        chosen = (self.token and not self.token_generated) or (self.user and self.password)
        if not is_loopback(self.host) and not chosen:
            raise PanelConfigError(
                f"band panel: refusing to listen on {self.host} without authentication; "
                f"set PANEL_TOKEN (make one with {MAKE_TOKEN}) or PANEL_USER and PANEL_PASSWORD, or bind to 127.0.0.1"
            )
        if bool(self.user) != bool(self.password):
            raise PanelConfigError("band panel: set both PANEL_USER and PANEL_PASSWORD, or neither")
        if not is_loopback(self.host):
            for name, secret in (("PANEL_TOKEN", self.token), ("PANEL_PASSWORD", self.password)):
                if secret and not strong(secret):
                    raise PanelConfigError(
                        f"band panel: {name} is too easy to guess to listen on {self.host} "
                        f"({len(secret)} characters, {len(set(secret))} different; at least {MIN_SECRET_CHARS} "
                        f"with {MIN_DISTINCT_CHARS} different ones): make one with {MAKE_TOKEN}, or bind to 127.0.0.1"
                    )
        if not 0 < self.port < 65536:
            raise PanelConfigError(f"band panel: port {self.port} is not a TCP port")


def from_env(env: Mapping[str, str] | None = None, **overrides: object) -> PanelConfig:
    """Settings from ``PANEL_*`` variables; flags given as ``overrides`` win (``None`` = not given)."""
    env = os.environ if env is None else env
    values: dict[str, object] = {
        "host": env.get("PANEL_HOST") or DEFAULT_HOST,
        "port": int(env.get("PANEL_PORT") or DEFAULT_PORT),
        "nats_url": env.get("NATS_URL") or None,
        "token": env.get("PANEL_TOKEN", ""),
        "user": env.get("PANEL_USER", ""),
        "password": env.get("PANEL_PASSWORD", ""),
        "edge_urls": tuple(u.strip() for u in (env.get("PANEL_EDGE_URLS") or "http://127.0.0.1:8080").split(",") if u.strip()),
        "cookie_secure": env.get("PANEL_COOKIE_SECURE", "") in ("1", "true", "yes"),
    }
    socket = env.get("BAND_CONTROL_SOCKET")
    if socket:
        values["control_socket"] = Path(socket)
    elif Path(".band/control.sock").exists():
        values["control_socket"] = Path(".band/control.sock")
    values.update({k: v for k, v in overrides.items() if v is not None})
    if not values["token"] and not values["user"]:
        values["token"] = secrets.token_urlsafe(24)
        values["token_generated"] = True
    config = PanelConfig(**values)  # type: ignore[arg-type]
    config.check()
    try:
        dlq_retention(env)  # the panel makes the dead-letter stream: a bad setting stops it here, named
    except ConfigError as exc:
        raise PanelConfigError(f"band panel: {exc}") from None
    return config


__all__ = ["DEFAULT_PORT", "MIN_SECRET_CHARS", "PanelConfig", "PanelConfigError", "from_env", "is_loopback", "strong"]
