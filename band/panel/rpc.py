"""JSON-RPC 2.0 over HTTP onto band's RPC: ``{"method": "svc.method"}`` calls ``band.rpc.svc.method``.

This is how a backend without a NATS client (PHP, a shell script) calls a band
service. Band's failures become JSON-RPC error objects with band's own code in
``data.code``: no responders or no such method → -32601, bad parameters → -32602,
anything else a service raised or a timeout → -32000.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client

from .. import wire
from ..errors import RPCError, RPCTimeout, ServiceUnavailable
from ..response import Response
from ..runtime import RPC

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_ERROR = -32000
MAX_BATCH = 100


def error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        body["data"] = data
    return {"jsonrpc": "2.0", "error": body, "id": id_}


def split_method(method: Any) -> tuple[str, str] | None:
    """``"svc.method"`` → ``("svc", "method")`` when both are valid subject tokens."""
    if not isinstance(method, str):
        return None
    service, dot, name = method.partition(".")
    if not dot or not wire.is_service_name(service) or not wire.is_token(name):
        return None
    return service, name


class JsonRpc:
    """Answers JSON-RPC 2.0 requests (single or batch) by calling band services."""

    def __init__(self, connection: Callable[[], Client], timeout_s: float) -> None:
        self._rpc = RPC(connection)
        self._timeout = timeout_s

    async def handle_text(self, body: bytes) -> Any:
        """The response document for an HTTP body, or ``None`` when only notifications came."""
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            return error(None, PARSE_ERROR, f"parse error: the body is not JSON ({exc})")
        if isinstance(document, list):
            if not document:
                return error(None, INVALID_REQUEST, "invalid request: an empty batch")
            if len(document) > MAX_BATCH:
                return error(None, INVALID_REQUEST, f"invalid request: a batch holds at most {MAX_BATCH} calls")
            answers = await asyncio.gather(*(self.handle_one(item) for item in document))
            replies = [a for a in answers if a is not None]
            return replies or None
        return await self.handle_one(document)

    async def handle_one(self, request: Any) -> dict[str, Any] | None:
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or "method" not in request:
            rid = request.get("id") if isinstance(request, dict) and _valid_id(request.get("id")) else None
            return error(rid, INVALID_REQUEST, 'invalid request: expected {"jsonrpc": "2.0", "method": "service.method", "params": {...}, "id": ...}')
        notification = "id" not in request
        rid = request.get("id")
        if not notification and not _valid_id(rid):
            return error(None, INVALID_REQUEST, "invalid request: id must be a string, a number or null")
        target = split_method(request["method"])
        if target is None:
            return None if notification else error(rid, METHOD_NOT_FOUND, f"method not found: {request['method']!r} is not 'service.method'")
        params = request.get("params", {})
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return None if notification else error(rid, INVALID_PARAMS, "invalid params: band methods take named parameters, so params must be an object")
        service, name = target
        if notification:
            await self._rpc.notify(service, name, **params)
            return None
        try:
            result = await self._rpc.request(service, name, timeout__=self._timeout, **params)
        except RPCTimeout as exc:
            return error(rid, SERVER_ERROR, exc.message, {"code": exc.code})
        except ServiceUnavailable as exc:
            return error(rid, METHOD_NOT_FOUND, f"method not found: {exc.message}", {"code": exc.code})
        except RPCError as exc:
            code = {404: METHOD_NOT_FOUND, 400: INVALID_PARAMS}.get(exc.code, SERVER_ERROR)
            return error(rid, code, exc.message, {"code": exc.code})
        if isinstance(result, Response):
            result = result.to_wire()
        return {"jsonrpc": "2.0", "result": result, "id": rid}


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))


__all__ = ["INVALID_PARAMS", "INVALID_REQUEST", "METHOD_NOT_FOUND", "PARSE_ERROR", "SERVER_ERROR", "JsonRpc", "split_method"]
