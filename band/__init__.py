"""band: small Python services for event pipelines on NATS.

The documented API::

    from band import settings, logger, expose, worker, cleanup, response, rpc, scheduler, blocking, redis_factory

``response`` and ``blocking`` stand alone. The others belong to a service: they
resolve against the app being loaded by ``band run`` (or a test), else a default app
made on first use. Importing band does nothing else: no loop, no file, no connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._core.app import App, current_app
from ._core.blocking import blocking
from .errors import BandError, ConfigError, NoResponders, RemoteError, RPCError, RPCTimeout, ServiceUnavailable
from .response import response

__version__ = "0.1.0"

if TYPE_CHECKING:  # what the module __getattr__ below hands out, for type checkers
    from ._core.log import Logger
    from ._core.redis import RedisFactory
    from ._core.registry import Expose
    from ._core.rpc import RPC
    from ._core.scheduler import Scheduler
    from ._core.settings import Settings

    settings: Settings
    logger: Logger
    expose: Expose
    from ._core.app import F

    def worker() -> Callable[[F], F]: ...
    def cleanup(timeout: float | None = None) -> Callable[[F], F]: ...
    rpc: RPC
    scheduler: Scheduler
    redis_factory: RedisFactory

_APP_BOUND = ("settings", "logger", "expose", "worker", "cleanup", "rpc", "scheduler", "redis_factory")


def __getattr__(name: str) -> Any:
    if name in _APP_BOUND:
        return getattr(current_app(), name)
    raise AttributeError(f"module 'band' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_APP_BOUND))


__all__ = [
    "App",
    "BandError",
    "ConfigError",
    "NoResponders",
    "RPCError",
    "RPCTimeout",
    "RemoteError",
    "ServiceUnavailable",
    "blocking",
    "cleanup",
    "current_app",
    "expose",
    "logger",
    "redis_factory",
    "response",
    "rpc",
    "scheduler",
    "settings",
    "worker",
]
