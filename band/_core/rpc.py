"""``rpc``: call methods of other services over NATS request/reply.

Every failure is an exception: :class:`~band.errors.ServiceUnavailable` at once when
nobody serves the method (NATS "no responders"), :class:`~band.errors.RPCTimeout`
after the call's timeout, :class:`~band.errors.RemoteError` when the remote raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nats.errors
from nats.aio.client import Client

from .. import tracing, wire
from ..errors import RemoteError, RPCTimeout, ServiceUnavailable
from ..response import BadResponse, DataResponse, Response, from_wire

DEFAULT_TIMEOUT_S = 2.0


class RPC:
    """Bound to a service's NATS connection once it runs (``connection`` is a callable)."""

    def __init__(self, connection: Callable[[], Client]) -> None:
        self._connection = connection
        self._subjects: dict[tuple[str, str], str] = {}

    async def request(self, service: str, name: str, /, timeout__: float = DEFAULT_TIMEOUT_S, **params: Any) -> Any:
        """Call ``service.name(**params)`` and return its result.

        ``response.data(x)`` and plain values arrive as ``x`` (``None`` as ``None``);
        pixel, redirect and error responses arrive as response objects. ``service`` and
        ``name`` are positional, so the method may take parameters of those names.

        Raises:
            ServiceUnavailable: no instance of ``service`` serves ``name``.
            RPCTimeout: no answer within ``timeout__`` seconds.
            RemoteError: the method raised or refused the parameters.
        """
        subject = self._subject(service, name)
        if tracing.ON:  # the call continues the current trace
            with tracing.outgoing(f"call {service}.{name}", subject) as headers:
                return await self._request(subject, service, name, timeout__, params, headers)
        return await self._request(subject, service, name, timeout__, params, None)

    async def _request(
        self, subject: str, service: str, name: str, timeout__: float, params: Any, headers: dict[str, str] | None
    ) -> Any:
        nc = self._connection()
        try:
            msg = await nc.request(subject, wire.encode(params), timeout=timeout__, headers=headers)
        except nats.errors.NoRespondersError:
            raise ServiceUnavailable(f"no service answers {subject} (is '{service}' running with method '{name}'?)") from None
        except nats.errors.TimeoutError:
            raise RPCTimeout(f"{service}.{name} did not answer within {timeout__}s") from None
        failure = wire.error_from_headers(msg.headers)
        if failure is not None:
            code, description = failure
            raise RemoteError(description, code)
        try:
            value = wire.decode(msg.data)
            if isinstance(value, dict) and value.get("type__") == "data" and "data" in value:
                return value["data"]  # the common case, without building a response object
            answer: Response = from_wire(value)
        except (wire.DecodeError, BadResponse) as exc:
            raise RemoteError(f"{service}.{name} answered garbage: {exc}", 502) from None
        return answer.data if isinstance(answer, DataResponse) else answer

    def _subject(self, service: str, name: str) -> str:
        """The RPC subject, validated once per (service, name)."""
        subject = self._subjects.get((service, name))
        if subject is None:
            if not (wire.is_service_name(service) and wire.is_token(name)):
                raise ValueError(f"not a valid service/method: {service!r}/{name!r}")
            subject = self._subjects[(service, name)] = wire.rpc_subject(service, name)
        return subject

    async def notify(self, service: str, name: str, /, **params: Any) -> None:
        """Fire and forget: publish the call, wait for nothing."""
        subject = self._subject(service, name)
        if tracing.ON:
            with tracing.outgoing(f"notify {service}.{name}", subject, "producer") as headers:
                return await self._connection().publish(subject, wire.encode(params), headers=headers)
        await self._connection().publish(subject, wire.encode(params))

    async def push(self, uid: str, data: Any) -> None:
        """Send ``data`` to every WebSocket of user ``uid`` on every edge."""
        if not wire.UID_RE.match(str(uid)):
            raise ValueError(f"not a valid uid: {uid!r}")
        await self._connection().publish(wire.ws_subject(str(uid)), wire.encode(data))
