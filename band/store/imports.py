"""Events one already has into the store, each once: the store's side of ``band store import``.

An imported object is either an event as the edge publishes it (``service``, ``name``,
``uid``, ``td``, ``data``, ``id``, ``time``) or a row as the store exports it (flat
columns, ``extra.key``/``extra.value``, as ``SELECT * FROM stats.events`` gives). A row
is turned back into an event whose ``data`` holds its columns flat and its ``_extra``
pairs nested under their prefix, so both shapes take the live path: the same
:class:`~.rows.RowBuilder` routes, flattens and types them, and a row imported lands
as the row it was exported from.

Exactly once, as the writer does it for events it may have stored before: every
imported event is looked up by ``id`` in its table and ``bad_rows`` under the engine's
lock, and skipped when found. An event without a numeric ``id`` gets one from its
content (xxHash64 of its canonical JSON), so importing the same file twice stores each
event once. Imported rows carry no stream sequence (``stream_seq`` 0): the live
writer's high-water mark never counts them.

An object that is no event, or whose row the store cannot keep (a value over
``max_value_bytes``, a ``uid`` that does not fit, a value ClickHouse refuses), is not
stored: it comes back as bad, by its index, with the reason, for the importer to report.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import xxhash

from .. import wire
from . import body
from .backend import StoreError
from .config import BAD_ROWS, STREAM_SEQ, StoreConfig
from .rows import BadRow, RowBuilder
from .writer import Engine

FORGOTTEN = "a forgotten person's event (band privacy forget): not stored"

EVENT, ROW, AUTO = "event", "row", "auto"
SHAPES = (AUTO, EVENT, ROW)
_TIME_COLUMNS = ("date", "dateTime", "timestamp", STREAM_SEQ.name)  # the store fills these itself
_ROW_MARKS = frozenset(_TIME_COLUMNS)
_EXTRA_KEY = "extra.key"
_MAX_REASON = 300
MAX_UNPACKED = 256 << 20  # a batch of lines, unpacked: far above any real one, a bound against a zip bomb


class NotAnEvent(ValueError):
    """The object is neither an event nor a store row; the message says which fields were expected."""


@dataclass
class Outcome:
    """What became of one batch: ``bad`` holds ``(index in the batch, reason)``."""

    stored: int = 0
    skipped: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"stored": self.stored, "skipped": self.skipped, "bad": [list(b) for b in self.bad]}


def pack(lines: Sequence[bytes]) -> str:
    """Lines as one batch over NATS: joined, zlib-compressed (JSON lines shrink 5-40x, so a
    batch of thousands fits one message), base64 text in the call's JSON."""
    return base64.b64encode(zlib.compress(b"\n".join(lines), 1)).decode()


def unpack(data: str) -> list[bytes]:
    """:func:`pack`'s lines.

    Raises:
        ValueError: not a packed batch, or one over :data:`MAX_UNPACKED` bytes.
    """
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(data, validate=True), MAX_UNPACKED)
    except (zlib.error, ValueError) as exc:
        raise ValueError(f"not a batch of lines packed by band store import: {exc}") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"a batch of lines over {MAX_UNPACKED} bytes unpacked")
    return raw.split(b"\n") if raw else []


def parse(raw: bytes) -> tuple[Any, str]:
    """``(the JSON value, "")``, or ``(None, why it is not JSON)``."""
    try:
        return body.load(raw), ""
    except (wire.DecodeError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0].removeprefix("body is not valid JSON: ")[:200]
        return None, f"not JSON ({detail})"


def shape_of(obj: Mapping[str, Any]) -> str:
    """``event`` or ``row``: a row has the store's flat time columns or a ``x.key``
    column and no ``data``/``td`` object.

    Raises:
        NotAnEvent: neither shape.
    """
    if isinstance(obj.get("data"), dict) or isinstance(obj.get("td"), dict) or "key" in obj:
        return EVENT
    if not _ROW_MARKS.isdisjoint(obj) or any("." in key for key in obj):
        return ROW
    if "service" in obj or "name" in obj or "data" in obj:
        return EVENT
    raise NotAnEvent("neither an event (service, name, data, td, id, time) nor a store row "
                     "(the columns of SELECT * FROM stats.events: date, dateTime, timestamp, ...)")


def event_of(obj: Any, config: StoreConfig, shape: str = AUTO) -> dict[str, Any]:
    """``obj`` as an event the row builder takes (a row mapped back, an event as it is).

    Raises:
        NotAnEvent: ``obj`` is not an object, or not of ``shape``.
    """
    if not isinstance(obj, dict):
        raise NotAnEvent(f"a JSON {type(obj).__name__ if obj is not None else 'null'}, not an object")
    if (shape if shape != AUTO else shape_of(obj)) == EVENT:
        return obj
    return _row_event(obj, config)


def _row_event(row: Mapping[str, Any], config: StoreConfig) -> dict[str, Any]:
    """A store row back as an event: copied props at the top, ``time`` from ``timestamp``
    (else ``dateTime``, else ``date``), every other column in ``data`` by its own name
    (the builder flattens ``data`` by joining keys with ``_``, so ``page_url`` finds its
    column), and each ``<prefix>_extra`` pair under ``data[<prefix>]``, so the builder
    puts it back in the same ``_extra`` with the same key.

    An ``_extra`` entry named like a column (a value that did not fit it, ``sess_num``:
    ``"n/a"``) replaces that column's value, which is then only the column's default."""
    top = set(config.copy_props)
    event: dict[str, Any] = {}
    data: dict[str, Any] = {}
    extras: list[tuple[str, Any, Any]] = []
    for key, value in row.items():
        if key in _ROW_MARKS or key.endswith(".value"):
            continue
        if key.endswith(".key"):
            base = key[: -len(".key")]
            extras.append((base, value, row.get(base + ".value")))
        elif key in top:
            event[key] = value
        elif value is not None and value != "" and value != []:  # a column left empty: the default again
            data[key] = value
    for base, keys, values in extras:
        _extras(data, base, keys, values)
    ms = _row_ms(row)
    if ms is not None:
        event["time"] = ms
    event["data"] = data
    return event


def _extras(data: dict[str, Any], base: str, keys: Any, values: Any) -> None:
    if not isinstance(keys, list) or not isinstance(values, list):
        return
    target = data
    if base != "extra":
        found = data.setdefault(base.removesuffix("_extra"), {})
        if not isinstance(found, dict):  # a column of the prefix's name: keep its keys flat beside it
            return _put(data, base.removesuffix("_extra") + "_", keys, values)
        target = found
    _put(target, "", keys, values)


def _put(target: dict[str, Any], prefix: str, keys: list[Any], values: list[Any]) -> None:
    """The pairs at the end of ``target`` in their order (the builder keeps an ``_extra``'s
    keys in the order it meets them), replacing a column's default of the same name."""
    for key, value in zip(keys, values, strict=False):
        name = prefix + str(key)
        target.pop(name, None)
        target[name] = value


def _row_ms(row: Mapping[str, Any]) -> int | None:
    stamp = row.get("timestamp")
    if isinstance(stamp, str) and stamp.isdigit():
        stamp = int(stamp)
    if isinstance(stamp, int) and not isinstance(stamp, bool) and stamp > 0:
        return stamp
    for key, form in (("dateTime", "%Y-%m-%d %H:%M:%S"), ("date", "%Y-%m-%d")):
        value = row.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value * 1000
        if isinstance(value, str):
            try:
                parsed = dt.datetime.strptime(value[:19].replace("T", " "), form)
            except ValueError:
                continue
            return int(parsed.replace(tzinfo=dt.UTC).timestamp() * 1000)
    return None


def content_id(event: Mapping[str, Any]) -> int:
    """A deterministic id for an event without one: xxHash64 of its JSON with sorted
    keys, so the same event (whatever its key order or spacing) gets the same id."""
    try:
        import orjson

        text = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    except (ImportError, TypeError):  # no orjson, or an integer over 64 bits
        text = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return xxhash.xxh64_intdigest(text) or 1


def _has_id(event: Mapping[str, Any]) -> bool:
    """The event's own id will do (the builder takes a number, or a string of digits, in UInt64)."""
    value = event.get("id")
    if type(value) is str and value.isdigit():
        value = int(value)
    return type(value) is int and 0 < value < 2**64


async def store_objects(engine: Engine, builder: RowBuilder, objects: Sequence[Any], *, shape: str = AUTO,
                        now_ms: int | None = None, forgotten: Callable[[Any], bool] | None = None) -> Outcome:
    """Store each object's row unless its id is stored already; an object given as
    ``bytes`` is a JSON line, parsed here. ``now_ms`` stands in for an event without a
    ``time`` (default: now). An event ``forgotten`` says is a forgotten person's is not
    stored (:mod:`.tombstones`): it is counted as bad, with that reason.

    Raises:
        StoreError: ClickHouse failed for a reason other than the data (unreachable,
            full): nothing is known about this batch; storing it again is safe.
    """
    outcome = Outcome()
    fallback_ms = now_ms if now_ms is not None else int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    groups: dict[str, list[tuple[int, int, bytes]]] = {}
    seen: set[int] = set()
    for index, obj in enumerate(objects):
        if type(obj) is bytes:
            obj, reason = parse(obj)
            if reason:
                outcome.bad.append((index, reason))
                continue
        try:
            event = event_of(obj, builder.config, shape)
            if forgotten is not None and forgotten(event):
                outcome.bad.append((index, FORGOTTEN))
                continue
            table, event_id, _, row = builder.line(event, 0 if _has_id(event) else content_id(event), fallback_ms, 0)
        except (NotAnEvent, BadRow) as exc:
            outcome.bad.append((index, str(exc)[:_MAX_REASON]))
            continue
        if event_id in seen:  # twice in one batch: the first is the one stored
            outcome.skipped += 1
            continue
        seen.add(event_id)
        groups.setdefault(table, []).append((index, event_id, builder.encode(table, row)))
    async with engine.lock:
        for table, items in groups.items():
            ids = [event_id for _, event_id, _ in items]
            found = await engine.existing(table, ids)
            if table != BAD_ROWS:
                found |= await engine.existing(BAD_ROWS, ids)
            fresh = [item for item in items if item[1] not in found]
            outcome.skipped += len(items) - len(fresh)
            await _insert(engine, builder, table, fresh, outcome)
    return outcome


async def _insert(engine: Engine, builder: RowBuilder, table: str, items: list[tuple[int, int, bytes]],
                  outcome: Outcome) -> None:
    """Insert; a batch ClickHouse refuses for its data is halved until the rows at fault
    are found, which come back as bad (as the writer does, without ``bad_rows``: the
    importer has the line and says why)."""
    if not items:
        return
    try:
        await engine.insert_encoded(table, builder.form(table), [row for _, _, row in items])
        outcome.stored += len(items)
    except StoreError as exc:
        if not exc.is_data_error:
            raise
        if len(items) == 1:
            outcome.bad.append((items[0][0], f"ClickHouse refused the row: {exc.message}"[:_MAX_REASON]))
            return
        half = len(items) // 2
        await _insert(engine, builder, table, items[:half], outcome)
        await _insert(engine, builder, table, items[half:], outcome)


__all__ = ["AUTO", "EVENT", "FORGOTTEN", "ROW", "SHAPES", "NotAnEvent", "Outcome", "content_id", "event_of", "pack",
           "parse", "shape_of", "store_objects", "unpack"]
