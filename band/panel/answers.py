"""The SQL box's answers of any size.

The page shows the first ``SHOW_ROWS`` rows and says how many there are; "Download CSV"
streams every row from the store (``store.stream``'s chunks over NATS) to the HTTP response
as they come. The panel holds one chunk at a time, whatever the answer's size, and the
response's backpressure paces the store: a slow download never fills the panel's memory.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any

from aiohttp import web
from nats.aio.client import Client

from .. import store, wire
from ..errors import RemoteError, RPCError
from ..runtime import RPC

SHOW_ROWS = 1_000
COUNT_FOR_S = 10.0  # how long the panel keeps counting rows past those it shows


async def first_rows(nc: Client, service: str, sql: str, params: Mapping[str, Any] | None,
                     timeout: float) -> dict[str, Any]:
    """``{"columns", "rows", "total", "complete", "note"}``: at most ``SHOW_ROWS`` rows; ``total``
    is every row when ``complete``, else the rows counted in ``COUNT_FOR_S`` seconds.

    An answer that fits one NATS message comes in one call; a larger one (the store's 413)
    is streamed and counted line by line without parsing the rows past those shown.

    Raises:
        band.RPCError: the store's error (a bad query, a write), or no store.
        ValueError: the store answered something that is not ``{columns, rows}``.
    """
    try:
        result = await RPC(lambda: nc).request(service, "query", timeout__=timeout, sql=sql, params=params)
    except RemoteError as exc:
        if exc.code != store.TOO_BIG:
            raise
        return await _streamed(nc, service, sql, params, timeout)
    if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
        raise ValueError("the store answered something that is not {columns, rows}")
    rows: list[Any] = result["rows"]
    return _shown(result.get("columns") or [], rows[:SHOW_ROWS], len(rows), True)


async def _streamed(nc: Client, service: str, sql: str, params: Mapping[str, Any] | None,
                    timeout: float) -> dict[str, Any]:
    columns, chunks = await store.open_chunks(nc, sql, params, timeout=timeout, service=service)
    names = [c["name"] for c in columns]
    rows: list[dict[str, Any]] = []
    total, complete = 0, True
    stop_at = asyncio.get_running_loop().time() + COUNT_FOR_S
    try:
        async for chunk in chunks:
            lines = chunk.splitlines()
            rows.extend(dict(zip(names, wire.decode(line), strict=False)) for line in lines[:SHOW_ROWS - len(rows)])
            total += len(lines)
            if asyncio.get_running_loop().time() > stop_at:
                complete = False
                break
    finally:  # stops the read in the store too once nobody asks for its chunks
        await chunks.aclose()
    return _shown(columns, rows, total, complete)


def _shown(columns: list[Any], rows: list[Any], total: int, complete: bool) -> dict[str, Any]:
    if complete and total <= len(rows):
        note = ""
    elif complete:
        note = f"{total:,} rows: showing the first {len(rows):,}. Download CSV for all of them."
    else:
        note = (f"more than {total:,} rows (counted for {COUNT_FOR_S:.0f} s): showing the first {len(rows):,}. "
                "Download CSV for all of them.")
    return {"columns": columns, "rows": rows, "total": total, "complete": complete, "note": note}


async def csv_download(request: web.Request, nc: Client, service: str, sql: str, params: Mapping[str, Any] | None,
                       timeout: float) -> web.StreamResponse:
    """Every row as CSV (a header line of column names), written as the store's chunks come.

    A store that cannot stream (an older store, or a stand-in with
    ``query`` only) answers in one message, as before. A failure before the first row
    (a bad query, no store) raises before anything is sent, so the caller answers it as
    an error; one after it cuts the response short (the chunked body never ends), which a
    browser shows as a failed download.

    Raises:
        band.RPCError: as :func:`first_rows`.
    """
    names, batches = await _row_batches(nc, service, sql, params, timeout)
    response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                           "Content-Disposition": 'attachment; filename="query.csv"',
                                           "Cache-Control": "no-store"})
    try:
        await response.prepare(request)
        await response.write(csv_lines([names]))
        async for batch in batches:
            await response.write(csv_lines(batch))
    finally:
        await batches.aclose()
    await response.write_eof()
    return response


async def _row_batches(nc: Client, service: str, sql: str, params: Mapping[str, Any] | None,
                       timeout: float) -> tuple[list[str], AsyncGenerator[list[Any], None]]:
    """The column names, and the rows (lists of values) a chunk at a time."""
    try:
        columns, chunks = await store.open_chunks(nc, sql, params, timeout=timeout, service=service)
    except RPCError as exc:
        if exc.code != 503:  # 503: no `stream` here (a store on a ClickHouse server, a stand-in)
            raise
        result = await RPC(lambda: nc).request(service, "query", timeout__=timeout, sql=sql, params=params)
        if not isinstance(result, dict) or not isinstance(result.get("rows"), list):
            raise ValueError("the store answered something that is not {columns, rows}") from None
        names = [c["name"] for c in result.get("columns") or []] or list((result["rows"] or [{}])[0])
        return names, _one_batch([[row.get(n) for n in names] for row in result["rows"]])
    return [c["name"] for c in columns], _decoded(chunks)


async def _decoded(chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[list[Any], None]:
    try:
        async for chunk in chunks:
            yield [wire.decode(line) for line in chunk.splitlines()]
    finally:  # stops the requests ahead, and so the read in the store
        await chunks.aclose()


async def _one_batch(rows: list[Any]) -> AsyncGenerator[list[Any], None]:
    yield rows


def csv_lines(rows: Iterable[Iterable[Any]]) -> bytes:
    """Rows as CSV lines (UTF-8), each value through :func:`cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([cell(v) for v in row] for row in rows)
    return out.getvalue().encode()


def cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) is
    quoted with a leading ``'``, since events carry what visitors typed (OWASP CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


__all__ = ["SHOW_ROWS", "cell", "csv_download", "csv_lines", "first_rows"]
