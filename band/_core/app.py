"""``App``: one service's declarations and the objects its code imports from ``band``.

``from band import expose, rpc, settings, ...`` resolves against the *current* app:
the one ``band run`` (or a test) is loading, else a process-wide default made on
first use. Nothing here does I/O; :mod:`band._runtime.service` runs an app on NATS.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from nats.aio.client import Client

from .. import wire
from ..errors import ConfigError
from .log import Logger
from .redis import RedisFactory
from .registry import Expose, Lifecycle, Registry
from .rpc import RPC
from .scheduler import Scheduler
from .settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_NAME = "band"


class App:
    """A service: its name, settings, declarations and runtime helpers."""

    def __init__(self, name: str | None = None, settings: Settings | dict[str, Any] | None = None) -> None:
        self.settings = settings if isinstance(settings, Settings) else Settings(settings)
        resolved = name or self.settings.get("name") or DEFAULT_NAME
        if not wire.is_service_name(resolved):
            raise ConfigError(f"service name {resolved!r} must be letters, digits, '_' or '-'")
        self.name: str = str(resolved)
        self.registry = Registry()
        self.expose = Expose(self.registry)
        self._lifecycle = Lifecycle(self.registry)
        self.logger = Logger(service=self.name)
        self.rpc = RPC(self.connection)
        self.scheduler = Scheduler(self.logger)
        self.redis_factory = RedisFactory(self.settings)
        self.nc: Client | None = None
        self.module: ModuleType | None = None  # the service's code, once loaded
        self.collectors: list[Any] = []  # the service's own Prometheus collectors, served on its /metrics

    def worker(self) -> Callable[[F], F]:
        """``@worker()``: started with the service, cancelled at stop."""
        return self._lifecycle.worker()

    def cleanup(self, timeout: float | None = None) -> Callable[[F], F]:
        """``@cleanup()``: run at stop with a deadline (``cleanup_timeout`` setting, else 0.1 s)."""
        default = float(self.settings.get("cleanup_timeout", 0.1))
        return self._lifecycle.cleanup(default if timeout is None else timeout)

    def connection(self) -> Client:
        """The NATS connection of the running service."""
        if self.nc is None:
            raise RuntimeError(f"service {self.name!r} is not running: rpc works once 'band run' started it")
        return self.nc

    def __repr__(self) -> str:
        return f"App({self.name!r}, endpoints={len(self.registry.endpoints)})"


_current: contextvars.ContextVar[App] = contextvars.ContextVar("band_current_app")
_default: App | None = None


def current_app() -> App:
    """The app being loaded or run in this context, else the process default."""
    global _default
    app = _current.get(None)
    if app is not None:
        return app
    if _default is None:
        _default = App()
    return _default


def set_current(app: App) -> contextvars.Token[App]:
    return _current.set(app)


def reset_current(token: contextvars.Token[App]) -> None:
    _current.reset(token)
