"""band's exceptions: one root, typed failures instead of a silent ``None``."""

from __future__ import annotations

from typing import Any


class BandError(Exception):
    """Root of every error band raises where a user can see it: ``except band.BandError``
    catches them all (decoding, responses, the store, the panel's and the edge's config,
    the edge's and the CLI's failures)."""


class ConfigError(BandError, ValueError):
    """A service definition or config file is wrong; raised at registration or start."""


class RPCError(BandError):
    """A call to another service failed. ``code`` follows HTTP status codes."""

    def __init__(self, message: str, code: int = 500, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code  # the one place the status lives (HTTP's numbers)
        self.data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code})"


class RPCTimeout(RPCError):
    """No answer within the call's timeout."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message, 504, data)


class ServiceUnavailable(RPCError):
    """Nobody subscribes to that method (NATS "no responders"): raised at once."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message, 503, data)


NoResponders = ServiceUnavailable


class RemoteError(RPCError):
    """The remote method raised, or refused the request (bad params, garbage body)."""


class CleanupFailed(BandError, ExceptionGroup[Exception]):
    """One or more ``@cleanup()`` functions raised or overran their deadline; raised by a
    service's stop after every cleanup ran (each failure is one of its ``exceptions``)."""


__all__ = [
    "BandError",
    "CleanupFailed",
    "ConfigError",
    "NoResponders",
    "RPCError",
    "RPCTimeout",
    "RemoteError",
    "ServiceUnavailable",
]
