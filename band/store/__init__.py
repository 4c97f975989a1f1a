"""The store from a service: ``from band import store``.

::

    rows = await store.query(
        "SELECT page_url, count() AS views FROM stats.events WHERE date >= {since:Date} GROUP BY page_url",
        since="2024-05-01")
    await store.insert("adwords_costs", [{"date": "2024-05-01", "campaign": "x", "cost": 12.5}])

Both go over RPC to the ``store`` service (``band.rpc.store.query`` / ``.insert``), the
one process that opens the data. Values travel as server-side ``{name:Type}``
parameters, never formatted into the SQL. A bad query raises :class:`band.RPCError`
(code 400) with ClickHouse's message; ``store.query`` runs reads only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from nats.aio.client import Client

from .. import wire
from .._core.app import current_app
from .._core.rpc import RPC
from ..errors import RemoteError

SERVICE = "store"
DEFAULT_TIMEOUT_S = 30.0
TOO_BIG = 413  # the store's code for an answer larger than one NATS message

__all__ = ["SERVICE", "insert", "open_chunks", "query", "query_result", "stream", "stream_result"]


async def query_result(sql: str, /, timeout__: float = DEFAULT_TIMEOUT_S, **params: Any) -> dict[str, Any]:
    """``{"columns": [{"name", "type"}], "rows": [{column: value}]}`` for a read-only query.
    An answer larger than one NATS message comes through :func:`stream_result`."""
    try:
        answer: dict[str, Any] = await current_app().rpc.request(SERVICE, "query", timeout__=timeout__, sql=sql,
                                                                params=params)
    except RemoteError as exc:
        if exc.code != TOO_BIG:
            raise
        columns, rows = await stream_result(sql, timeout__=timeout__, **params)
        return {"columns": columns, "rows": [row async for row in rows]}
    return answer


async def stream_result(sql: str, /, timeout__: float = DEFAULT_TIMEOUT_S,
                        **params: Any) -> tuple[list[dict[str, str]], AsyncIterator[dict[str, Any]]]:
    """The columns, and the rows of a read of any size as they arrive, in constant memory
    (chunks over NATS, at most ``wire.STREAM_IN_FLIGHT`` asked for at once).

    Raises:
        band.RPCError: as :func:`query`, at once for a bad query, from the rows for a
            failure after the first chunk.
    """
    columns, chunks = await open_chunks(current_app().connection(), sql, params, timeout=timeout__)
    return columns, _rows(chunks, [c["name"] for c in columns])


async def open_chunks(nc: Client, sql: str, params: Mapping[str, Any] | None = None, *,
                      timeout: float = DEFAULT_TIMEOUT_S,
                      service: str = SERVICE) -> tuple[list[dict[str, str]], AsyncGenerator[bytes, None]]:
    """The columns, and the chunks of a read of any size (rows as JSON arrays, one a line),
    on the connection ``nc``: for a process that is no band service (the panel), and for
    a caller that passes chunks on without parsing every row.

    Raises:
        band.RPCError: as :func:`stream_result`.
    """
    opened = await RPC(lambda: nc).request(service, "stream", timeout__=timeout, sql=sql, params=dict(params or {}))
    return opened["columns"], _chunks(nc, opened, timeout)


async def _chunks(nc: Client, opened: dict[str, Any], timeout: float) -> AsyncGenerator[bytes, None]:
    ask = wire.encode({"cursor": opened["cursor"]})
    ahead: list[asyncio.Task[Any]] = []
    done = False
    try:
        while True:
            while not done and len(ahead) < wire.STREAM_IN_FLIGHT:
                ahead.append(asyncio.ensure_future(nc.request(opened["next"], ask, timeout=timeout)))
            if not ahead:
                return
            msg = await ahead.pop(0)
            failure = wire.error_from_headers(msg.headers)
            if failure is not None:
                raise RemoteError(failure[1], failure[0])
            if (msg.headers or {}).get(wire.STREAM_DONE_HEADER):
                done = True
            yield msg.data
            if done:
                return
    finally:
        for task in ahead:
            task.cancel()


async def _rows(chunks: AsyncGenerator[bytes, None], names: list[str]) -> AsyncIterator[dict[str, Any]]:
    try:
        async for chunk in chunks:
            for line in chunk.splitlines():
                yield dict(zip(names, wire.decode(line), strict=False))
    finally:  # a reader that stops early stops the requests ahead at once
        await chunks.aclose()


async def stream(sql: str, /, timeout__: float = DEFAULT_TIMEOUT_S, **params: Any) -> AsyncIterator[dict[str, Any]]:
    """Rows as dicts, any number of them, in constant memory::

        async for row in store.stream("SELECT uid, count() AS n FROM events GROUP BY uid"):
            ...
    """
    _, rows = await stream_result(sql, timeout__=timeout__, **params)
    async for row in rows:
        yield row


async def query(sql: str, /, timeout__: float = DEFAULT_TIMEOUT_S, **params: Any) -> list[dict[str, Any]]:
    """Rows as dicts; ``{name:Type}`` in ``sql`` takes ``name=value`` from ``params``.

    Raises:
        band.RPCError: 400 with ClickHouse's message for a bad query or a write;
            503 when no store runs.
    """
    rows: list[dict[str, Any]] = (await query_result(sql, timeout__=timeout__, **params))["rows"]
    return rows


async def insert(table: str, rows: list[dict[str, Any]], /, timeout__: float = DEFAULT_TIMEOUT_S) -> int:
    """Insert ``rows`` into ``table`` (a table of your own, defined in the store's store.yml).

    Returns the number of rows inserted.
    """
    answer = await current_app().rpc.request(SERVICE, "insert", timeout__=timeout__, table=table, rows=rows)
    return int(answer["inserted"])
