"""Rows to an insert body, and event bytes to Python: the store's JSON on its hot path.

Rows go to ClickHouse as ``JSONCompactEachRow`` under an explicit column list, the union
of the batch's keys: one JSON array per row (comma-separated, which ClickHouse reads, so
the whole batch is one encoder call), ``null`` where a row has no value.
ClickHouse reads that about twice as fast as ``JSONEachRow`` (no key to look up per
value), and ``null`` in a column that is not ``Nullable`` takes the column's default,
``DEFAULT`` expression included, exactly as an omitted key does. Only a ``Nullable``
column with a ``DEFAULT`` would differ (``null`` stays NULL there), so a table that has
one, and a table the store does not know the columns of, get ``JSONEachRow``.

orjson encodes and decodes (several times faster than json); what it refuses (a lone
surrogate escape, an integer over 64 bits) falls back to the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import chain
from typing import Any

from .. import wire
from .schema import Table

_ENCODER = json.JSONEncoder(separators=(",", ":"))  # ASCII escapes: a lone surrogate cannot break the body

try:  # the store extra installs orjson; without it the store still runs, on json
    import orjson

    _fast_loads: Any = orjson.loads
    _fast_dumps: Any = orjson.dumps
    _FastError: Any = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - depends on the install
    _fast_loads, _fast_dumps, _FastError = wire.decode, lambda row: _ENCODER.encode(row).encode(), wire.DecodeError

EACH_ROW = "JSONEachRow"
COMPACT = "JSONCompactEachRow"


def load(data: bytes) -> Any:
    """An event's bytes as Python; :class:`band.wire.DecodeError` when it is not JSON."""
    try:
        return _fast_loads(data)
    except _FastError:
        return wire.decode(data)


def dump(value: Any) -> bytes:
    """``value`` as JSON bytes of their own size: a row's bytes wait for their batch's
    insert, and orjson's own bytes object keeps its whole 32 KiB buffer (measured: 20,000
    rows in flight held 650 MB where 20 MB would do), so they are copied to fit."""
    try:
        return memoryview(_fast_dumps(value)).tobytes()
    except TypeError:  # an integer over 64 bits, a lone surrogate: ASCII-escaped JSON
        return _ENCODER.encode(value).encode()


def encode(rows: Sequence[dict[str, Any]], compact: bool) -> tuple[str, list[str], bytes]:
    """``(format, columns, body)`` for inserting ``rows``; ``columns`` is empty for
    ``JSONEachRow`` (each row names its own)."""
    if not compact:
        return EACH_ROW, [], b"\n".join(map(dump, rows))
    columns = list(dict.fromkeys(chain.from_iterable(rows)))
    values = [list(map(row.get, columns)) for row in rows]
    try:  # one call for the batch: "[[...],[...]]" less its brackets is rows separated by commas
        return COMPACT, columns, _fast_dumps(values)[1:-1]
    except TypeError:
        return COMPACT, columns, b"\n".join(map(dump, values))


def compact_tables(tables: Sequence[Table]) -> frozenset[str]:
    """The tables ``JSONCompactEachRow`` fills exactly as ``JSONEachRow`` would: those
    without a ``Nullable`` column that has a ``DEFAULT``."""
    return frozenset(t.name for t in tables
                     if not any(c.default and "Nullable(" in c.type for c in t.columns.values()))


__all__ = [
    "COMPACT",
    "EACH_ROW",
    "compact_tables",
    "dump",
    "encode",
    "load",
]
