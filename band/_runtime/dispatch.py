"""What each role does with one NATS message, and how an error becomes a reply.

Handlers and RPC methods answer (their typed response, or an error with the micro
error headers); enrichers answer once for every matching function of the service;
listeners answer nothing. Every call counts in its endpoint's stats and runs within
its time limit. Nothing here subscribes: :mod:`band._runtime.service` wires it up.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from .. import schemas, tracing, wire
from .._core.app import App
from .._core.arguments import Arguments
from .._core.ids import new_id
from .._core.registry import Endpoint
from ..errors import ConfigError, RPCError
from ..response import ErrorResponse, Response, to_wire
from .limits import CallLimit, Overrun
from .micro import EndpointStats

if TYPE_CHECKING:
    from .metrics import ServiceMetrics


class Reject(Exception):
    """A request refused before the function ran (bad body, bad arguments): a 4xx."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def describe(exc: BaseException) -> str:
    """``Type: text``, for this process's own log lines only: never sent to a caller."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def internal_error(ref: str) -> str:
    """What a caller is told when a function raised: a fixed text and the reference the
    service logged the traceback under. Exception text can hold paths, SQL, hostnames or
    customer data, so it stays in the log."""
    return f"internal error in the service (reference {ref}; its log has the details)"


async def quiet(awaitable: Any) -> None:
    """Await a best-effort step (reply, unsubscribe); log nothing, raise nothing."""
    try:
        await awaitable
    except Exception:  # noqa: BLE001 - best effort: must never raise
        pass


class Dispatch:
    """The role callbacks of one service instance."""

    def __init__(self, app: App, nc: Client, call_timeout_s: float, stats: Mapping[tuple[str, str], EndpointStats]) -> None:
        self.app = app
        self.nc = nc
        self.call_timeout_s = call_timeout_s
        self.limit = CallLimit()
        self._stats = stats
        self._rpc = app.registry.rpc_methods()
        self.metrics: ServiceMetrics | None = None  # set while /metrics is served (band/_runtime/metrics.py)
        self._schemas = declared_schemas(app)
        self.schema_skipped: Counter[str] = Counter()  # events a listener's schema refused, by method

    def schema_errors(self, ep: Endpoint, message: Mapping[str, Any]) -> list[dict[str, str]]:
        """The errors of ``message`` against the schema ``ep`` declared (none declared: none)."""
        if ep.schema is None:
            return []
        if wire.SCHEMA_ERRORS_FIELD in message:  # the edge's verdict is not part of the event
            message = {k: v for k, v in message.items() if k != wire.SCHEMA_ERRORS_FIELD}
        return self._schemas[ep.schema].errors(message)

    def decode(self, msg: Msg) -> dict[str, Any] | None:
        try:
            return wire.decode_object(msg.data)
        except wire.DecodeError:
            return None

    async def reply_error(self, msg: Msg, code: int, description: str, extra: Mapping[str, str] | None = None) -> None:
        if tracing.ON:
            tracing.failed(code, description)
        if msg.reply:
            headers = {**wire.error_headers(code, description), **(extra or {})}
            body = wire.encode({"message": headers[wire.ERROR_HEADER], "code": code})
            await quiet(self.nc.publish(msg.reply, body, headers=headers))

    # --- handlers and RPC: one function, one answer ---------------------------------
    async def on_handle(self, msg: Msg) -> None:
        key = msg.subject[len(wire.HANDLE_PREFIX) + 1 :]
        params = self.decode(msg)
        if params is None:
            return await self.reply_error(msg, 400, "request body must be a JSON object (the message)")
        ep = self.app.registry.find_handler(self.app.name, key)
        errors = self.schema_errors(ep, params) if ep is not None else []
        if errors:
            listed = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
            return await self.reply_error(msg, 400, f"the event does not match schema {ep.schema if ep else ''}: {listed}")
        path_params = params.get(wire.PARAMS_FIELD)
        if isinstance(path_params, dict):  # /x/:id → id=..., over the message's own id
            params = {**params, **path_params}
        return await self.answer(msg, ep, params, wire.ROLE_HANDLER)

    async def on_rpc(self, msg: Msg) -> None:
        method = msg.subject.rsplit(".", 1)[-1]
        params = self.decode(msg)
        if params is None:
            return await self.reply_error(msg, 400, "request body must be a JSON object of parameters")
        return await self.answer(msg, self._rpc.get(method), params, wire.ROLE_RPC)

    async def _call(self, ep: Endpoint, params: Mapping[str, Any]) -> Any:
        missing = ep.missing(params)
        if missing:
            raise Reject(400, f"{ep.method}() is missing argument(s): {', '.join(missing)}")
        arguments = ep.arguments(params)
        problem = Arguments.of(ep.fn).problem(ep.method, arguments)
        if problem is not None:
            raise Reject(400, problem)
        return await ep.fn(**arguments)

    async def answer(self, msg: Msg, ep: Endpoint | None, params: Mapping[str, Any] | None, role: str) -> None:
        """Run a handler or RPC method and reply with its typed response or an error."""
        started = time.perf_counter_ns()
        stats = self._stats.get((role, ep.method)) if ep is not None else None
        error: str | None = None
        code = 0
        try:
            if ep is None or params is None:
                raise Reject(404, f"nothing serves {msg.subject}")
            limit = ep.timeout_ms / 1000 if role == wire.ROLE_HANDLER else self.call_timeout_s
            result = await self.limit.within(limit, self._call(ep, params))
            body = wire.encode(to_wire(result))
            if msg.reply:
                await self.nc.publish(msg.reply, body)
        except Reject as exc:
            error, code = str(exc), exc.code
            await self.reply_error(msg, exc.code, error)
        except Overrun as exc:
            error, code = str(exc), 504
            self.app.logger.warning("call cancelled at its time limit", subject=msg.subject, limit=exc.limit)
            await self.reply_error(msg, 504, error)
        except RPCError as exc:  # a deliberate refusal, or a failed call to another service
            error, code = f"{exc.code}: {exc.message}", exc.code
            self.app.logger.warning("request refused", subject=msg.subject, code=exc.code, message=exc.message)
            await self.reply_error(msg, exc.code, exc.message)
        except Exception as exc:
            error, code = type(exc).__name__, 500  # the stats others can read get the kind, not the text
            ref = str((params or {}).get("id") or new_id())
            self.app.logger.exception(
                "request failed", subject=msg.subject, method=ep.method if ep else None, id=(params or {}).get("id"), ref=ref
            )
            await self.reply_error(msg, 500, internal_error(ref))
        finally:
            if stats is not None:
                stats.record(started, error)
            if self.metrics is not None and ep is not None:
                self.metrics.observe(role, ep.method, started, code)

    # --- enrichers and listeners: every matching function ----------------------------
    async def on_enrich(self, msg: Msg) -> None:
        """Call every matching enricher; reply once with what they add (or null)."""
        service = {wire.SERVICE_HEADER: self.app.name}
        message = self.decode(msg)
        if message is None or not isinstance(message.get("key"), str):
            return await self.reply_error(msg, 400, "request body must be the message (a JSON object with 'key')", service)
        key = message["key"]
        merged: Any = None
        failed: str | None = None
        bot, declined, called = bool(message.get(wire.BOT_FIELD)), False, False
        for ep in self.app.registry.by_role("enricher"):
            if ep.keys and not any(wire.key_matches(p, key) for p in ep.keys):
                continue
            if bot and not ep.bots:  # it declined bots: not called
                declined = True
                continue
            called = True
            args = {arg: wire.enrich_value(message, path) for arg, path in ep.props.items()}
            args["key"] = key
            result, error = await self.invoke(wire.ROLE_ENRICHER, ep, args, key, message.get("id"), self.call_timeout_s)
            if isinstance(result, ErrorResponse):
                error = f"enricher answered error {result.statusCode}: {result.message}"
                self.app.logger.warning("enricher returned an error", method=ep.method, key=key, message=result.message)
            elif result is not None:
                value = result.data if isinstance(result, Response) else result
                merged = {**merged, **value} if isinstance(merged, dict) and isinstance(value, dict) else value
            failed = failed or error
        if declined and not called:  # the edge did not ask this service for a bot's hit: no answer
            return None
        if merged is None and failed is not None:
            return await self.reply_error(msg, 500, failed, service)
        if msg.reply:
            await self.nc.publish(msg.reply, wire.encode(merged), headers=service)

    async def on_event(self, msg: Msg) -> None:
        """Non-durable listeners: every matching one gets the final message."""
        message = self.decode(msg)
        if message is None:
            self.app.logger.warning("event is not a JSON object; skipped", subject=msg.subject)
            return
        for ep in self.app.registry.by_role("listener"):
            if ep.durable or (ep.keys and not any(wire.key_matches(p, msg.subject) for p in ep.keys)):
                continue
            await self.listen(ep, msg.subject, message)

    async def listen(self, ep: Endpoint, subject: str, message: Mapping[str, Any], **extra: Any) -> str | None:
        """One listener call; the error text when it failed. An event its declared schema
        refuses is skipped (counted, logged): not an error, so a durable listener acks it."""
        errors = self.schema_errors(ep, message)
        if errors:
            self.schema_skipped[ep.method] += 1
            self.app.logger.warning("event skipped: it does not match the listener's schema", method=ep.method,
                                    schema=ep.schema, key=subject, id=message.get("id"), errors=errors[:10])
            return None
        params = {**message, **extra}
        _, error = await self.invoke(wire.ROLE_LISTENER, ep, params, subject, message.get("id"), self.call_timeout_s)
        return error

    async def invoke(
        self, role: str, ep: Endpoint, params: Mapping[str, Any], key: str, msg_id: Any, limit: float
    ) -> tuple[Any, str | None]:
        """Call an enricher or listener: count it, log a failure, never raise."""
        started = time.perf_counter_ns()
        result: Any = None
        error: str | None = None
        kind: str | None = None  # what the discovery stats (readable by any client) say
        try:
            call = ep.call(params)
            result = await self.limit.within(limit, tracing.calling(role, ep.method, call) if tracing.ON else call)
        except Overrun as exc:
            error = kind = str(exc)
            self.app.logger.warning(f"{role} cancelled at its time limit", method=ep.method, key=key, id=msg_id, limit=limit)
        except Exception as exc:
            ref = str(msg_id or new_id())
            kind = type(exc).__name__
            # an enricher's error goes back to the edge: no exception text; a listener's goes
            # only to its own dead letters, for the operator
            error = describe(exc) if role == wire.ROLE_LISTENER else internal_error(ref)
            self.app.logger.exception(f"{role} failed", method=ep.method, key=key, id=msg_id, ref=ref)
        stats = self._stats.get((role, ep.method))
        if stats is not None:
            stats.record(started, kind)
        if self.metrics is not None:
            self.metrics.observe(role, ep.method, started, 0 if error is None else 500)
        return result, error


def declared_schemas(app: App) -> dict[str, schemas.Schema]:
    """The schemas the service's handlers and listeners declare, from ``$BAND_SCHEMAS``
    (else ``./schemas``), the folder the edge reads.

    Raises:
        ConfigError: a declared schema the folder does not have, or an invalid file.
    """
    wanted = {ep.schema: ep.method for ep in app.registry.endpoints if ep.schema is not None}
    if not wanted:
        return {}
    folder = os.environ.get("BAND_SCHEMAS") or schemas.DEFAULT_DIR
    found = schemas.load(folder)
    out: dict[str, schemas.Schema] = {}
    for name, method in wanted.items():
        schema = found.by_key.get(name)
        if schema is None:
            raise ConfigError(f"{method}() declares schema {name!r}, which {folder}/ does not have: add {folder}/{name}.yml "
                              "or set BAND_SCHEMAS to the folder that has it")
        out[name] = schema
    return out


__all__ = ["Dispatch", "Reject", "declared_schemas", "describe", "internal_error", "quiet"]
