"""From an event message to a table row: routing, flattening, ``_extra``, UTC dates.

- Table: ``destinations["<service>/<name>"]`` (name lower-cased, whitespace → ``_``),
  else ``"<service>/default"``, else ``"other"``.
- Row: ``copy_props`` from the message (``td`` flattened to ``td_*``); ``date``,
  ``dateTime`` (UTC) and ``timestamp`` (ms) from ``time``; ``data`` flattened with ``_``
  (``data.page.title`` → ``page_title``). A leaf with no column of its name, or whose
  value does not fit the column's type, goes to the nearest ancestor's ``<prefix>_extra``
  (key relative to it, value as text), else the root ``extra``: never dropped.
- ``copy`` fills a column from the first of its paths present (``td_fpid`` from ``data.fpid``).
- ``stream_seq`` is the stream sequence the writer passes in, never a value of the event:
  an event's own ``stream_seq`` goes to ``extra`` like any field without a column.
- ``schema_errors``: the edge's verdict on an event that failed its schema in ``warn``
  mode, as JSON text; one refused in ``enforce`` mode is kept whole in ``failed_events``
  (:meth:`RowBuilder.failed_row`) instead of its table.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from typing import Any

from .. import wire
from . import body
from .config import BAD_ROWS, FAILED_EVENTS, STREAM_SEQ, StoreConfig, route_key
from .schema import Table
from .values import Misfit, converter, int_range, text

_EPOCH = dt.date(1970, 1, 1)
# The visitor: a uid that does not fit its column would take the column's default (0),
# which all such events share, so it makes a bad row instead of going to `extra`.
UID = "uid"


@functools.lru_cache(maxsize=4096)
def _day(days: int) -> str:
    """``YYYY-MM-DD`` of a day number since 1970 (events come in runs of the same day)."""
    return (_EPOCH + dt.timedelta(days=days)).isoformat()


def _is_text(type_: str) -> bool:
    """``String``, ``LowCardinality(String)``: a column that takes any text as it is."""
    return type_.replace("LowCardinality(", "").replace("Nullable(", "").rstrip(")").strip() == "String"


class BadRow(ValueError):
    """The event cannot be a row (a value over ``max_value_bytes``): it goes to ``bad_rows``."""


# A trie entry, one per path seen: a list, indexed by these positions (no attribute
# lookups on the hot path). The slot fields are filled when the entry is made.
_KIDS, _PATH, _PLAIN, _COLUMN, _CONVERT, _EXTRA, _KEY, _LOW, _HIGH = range(9)


class TableLayout:
    """One table's columns and extras, with the path → slot answers cached in a trie
    (one dict per level, walked beside the event, so a known path costs a dict lookup
    per key and no tuple). An entry says where a leaf lands: ``_COLUMN`` (the column's
    position in a row, or None),
    ``_PLAIN`` (a value of exactly this type goes in as it is: ``str`` into text columns,
    ``int`` within ``_LOW``..``_HIGH`` into integer ones), ``_CONVERT`` for the rest,
    and the ``_EXTRA``/``_KEY`` used when there is no column or the value misfits."""

    MAX_CACHED = 100_000  # paths from a hostile client cannot grow the cache forever

    def __init__(self, table: Table) -> None:
        self.table = table
        self.columns = {name: converter(col.type) for name, col in table.columns.items()
                        if "." not in name and name != STREAM_SEQ.name}  # the store's own: no event fills it
        self._types = {name: col.type for name, col in table.columns.items() if "." not in name}
        self.names = list(table.columns)  # a row is a list in this order (JSONCompactEachRow's)
        self.position = {name: i for i, name in enumerate(self.names)}
        self.extras = table.extra_prefixes()
        self.root: list[Any] = self._entry(())
        self._cached = 0

    @staticmethod
    def _entry(path: tuple[str, ...]) -> list[Any]:
        return [{}, path, None, None, None, "", "", 0, -1]

    def child(self, parent: list[Any], key: str) -> list[Any]:
        """The trie entry of ``key`` under ``parent`` (a throwaway one once the cache is full)."""
        trie: dict[str, list[Any]] = parent[_KIDS]
        entry = trie.get(key)
        if entry is None:
            entry = self._entry(parent[_PATH] + (key,))
            self.resolve(entry)
            if self._cached < self.MAX_CACHED:
                trie[key] = entry
                self._cached += 1
        return entry

    def resolve(self, entry: list[Any]) -> None:
        """Fill ``entry``'s slot fields from its path."""
        path = entry[_PATH]
        name = "_".join(path)
        entry[_EXTRA], entry[_KEY] = self._nearest_extra(path)
        convert = self.columns.get(name)
        if convert is not None:
            entry[_COLUMN], entry[_CONVERT] = self.position[name], convert
            type_ = self._types[name]
            if _is_text(type_):
                entry[_PLAIN] = str
            elif (bounds := int_range(type_)) is not None:
                entry[_PLAIN], (entry[_LOW], entry[_HIGH]) = int, bounds

    def _nearest_extra(self, path: tuple[str, ...]) -> tuple[str, str]:
        for cut in range(len(path) - 1, 0, -1):
            prefix = "_".join(path[:cut])
            if prefix in self.extras:
                return prefix, "_".join(path[cut:])
        return "", "_".join(path)


class RowBuilder:
    """Builds rows for every routed table of one :class:`StoreConfig`."""

    MAX_ROUTES = 10_000  # (service, name) pairs remembered; hostile names cannot grow it forever

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.layouts = {name: TableLayout(t) for name, t in config.tables.items()}
        self._copy_props = tuple(p for p in config.copy_props if p not in ("td", "data"))
        self._flatten_td = "td" in config.copy_props
        self._checks_uid = UID in self._copy_props
        self._copies = tuple((column, tuple(tuple(path.split(".")) for path in paths))
                             for column, paths in config.copy.items())
        self._max = config.max_value_bytes
        self._quarter = self._max // 4  # a str of fewer chars cannot exceed the limit in UTF-8
        self._routes: dict[tuple[str, str], str] = {}
        self._columns = {name: layout.names for name, layout in self.layouts.items()}
        self._compact = body.compact_tables(list(config.tables.values()))

    def form(self, table: str) -> tuple[str, list[str]]:
        """``(format, columns)`` of the rows :meth:`encode` makes for ``table``."""
        if table in self._compact:
            return body.COMPACT, self._columns[table]
        return body.EACH_ROW, []

    def encode(self, table: str, row: dict[str, Any] | list[Any]) -> bytes:
        """``row`` (from :meth:`line`, or a dict such as :meth:`bad_row`'s) as one line of
        an insert into ``table`` (see :meth:`form`): a JSON array over the table's columns,
        ``null`` where the row has no value."""
        if table in self._compact:
            return body.dump(row if isinstance(row, list) else list(map(row.get, self._columns[table])))
        if isinstance(row, list):
            names = self._columns[table]
            row = {names[i]: value for i, value in enumerate(row) if value is not None}
        return body.dump(row)

    def route(self, service: Any, name: Any) -> str:
        service_text = str(service or "")
        name_text = str(name or "")
        known = self._routes.get((service_text, name_text))
        if known is not None:
            return known
        destinations = self.config.destinations
        table = (
            destinations.get(route_key(f"{service_text}/{name_text}"))
            or destinations.get(f"{service_text}/default")
            or destinations["other"]
        )
        if len(self._routes) < self.MAX_ROUTES:
            self._routes[(service_text, name_text)] = table
        return table

    def build(self, message: Mapping[str, Any], fallback_id: int = 0, fallback_ms: int = 0,
              seq: int = 0) -> tuple[str, dict[str, Any]]:
        """``(table, row)`` for ``message``, the row as a dict of the columns it fills
        (and ``id``); :meth:`line` is the same as a list, which the writer uses.

        Raises:
            BadRow: a value too large for any column.
        """
        table, event_id, _, values = self.line(message, fallback_id, fallback_ms, seq)
        names = self.layouts[table].names
        row = {names[i]: value for i, value in enumerate(values) if value is not None}
        row["id"] = event_id
        return table, row

    def line(self, message: Mapping[str, Any], fallback_id: int = 0, fallback_ms: int = 0,
             seq: int = 0) -> tuple[str, int, int, list[Any]]:
        """``(table, id, time in ms, row)`` for ``message``; the row is a list over the
        table's columns (``None`` where the event has no value).

        ``fallback_id`` stands in for a missing or non-numeric ``id`` and
        ``fallback_ms`` for a missing ``time`` (both from the stream message); ``seq``
        is the message's stream sequence, for ``stream_seq``.

        Raises:
            BadRow: a value too large for any column.
        """
        get = message.get
        table = self.route(get("service"), get("name"))
        layout = self.layouts[table]
        row: list[Any] = [None] * len(layout.names)
        extras: dict[str, tuple[list[str], list[str]]] = {}
        top = {prop: message[prop] for prop in self._copy_props if prop in message}
        td = get("td")
        if self._flatten_td and isinstance(td, dict):
            top["td"] = td
        data = get("data")
        if data is not None and not isinstance(data, dict):
            top["data"] = data
        roots = [top]
        if isinstance(data, dict):
            roots.append(data)
        params = get("params")
        if isinstance(params, dict):
            roots.append({"params": params})
        self._walk(layout, row, extras, roots)
        position = layout.position
        for column, paths in self._copies:
            at = position.get(column)
            if at is not None and row[at] is None and column in layout.columns:
                self._copy(layout, row, column, at, message, paths)
        if self._checks_uid:
            at = position.get(UID)
            if at is not None and row[at] is None and get(UID) not in (None, ""):
                raise BadRow(f"uid {str(get(UID))[:40]!r} does not fit the uid column ({layout.table.columns[UID].type}); "
                             "stored as the column's default 0 it would merge with every other such visitor")
        at = position.get("id")
        event_id = row[at] if at is not None else None
        if type(event_id) is not int or event_id == 0:
            event_id = fallback_id
            if at is not None:
                row[at] = event_id
        ms = self._times(row, get("time"), fallback_ms, position)
        at = position.get(STREAM_SEQ.name)
        if at is not None:
            row[at] = seq
        verdict = get(wire.SCHEMA_ERRORS_FIELD)
        at = position.get(wire.SCHEMA_ERRORS_FIELD)
        if verdict is not None and at is not None:
            row[at] = json.dumps(verdict, ensure_ascii=False, default=str)
        for prefix, (keys, values) in extras.items():
            base = f"{prefix}_extra" if prefix else "extra"
            key_at, value_at = position.get(f"{base}.key"), position.get(f"{base}.value")
            if key_at is None or value_at is None:  # never dropped: without a place to keep them, a bad row
                raise BadRow(f"table {table} has no {base} columns for {', '.join(keys)}")
            row[key_at], row[value_at] = keys, values
        return table, event_id, ms, row

    def bad_row(self, message: Any, table: str, reason: str, fallback_id: int, fallback_ms: int,
                seq: int = 0) -> tuple[str, dict[str, Any]]:
        """The ``bad_rows`` row that keeps an event whole, with why it is there (``seq``:
        its stream sequence)."""
        row = self._kept(BAD_ROWS, message, fallback_id, fallback_ms, seq)
        row.update(table=table, reason=reason[:4096])
        return BAD_ROWS, row

    def refused(self, message: Mapping[str, Any]) -> bool:
        """Did the edge's schema check refuse ``message`` in ``enforce`` mode (and is there
        a ``failed_events`` table to keep it in)?"""
        verdict = message.get(wire.SCHEMA_ERRORS_FIELD)
        return isinstance(verdict, dict) and verdict.get("mode") == "enforce" and FAILED_EVENTS in self.layouts

    def failed_row(self, message: Mapping[str, Any], fallback_id: int, fallback_ms: int,
                   seq: int = 0) -> tuple[str, dict[str, Any]]:
        """The ``failed_events`` row of an event its schema refused: whole, with the key,
        the schema and version, and each error (path, rule, message)."""
        row = self._kept(FAILED_EVENTS, message, fallback_id, fallback_ms, seq)
        verdict = message.get(wire.SCHEMA_ERRORS_FIELD)
        verdict = verdict if isinstance(verdict, dict) else {}
        errors = [e for e in verdict.get("errors") or () if isinstance(e, dict)]
        version = verdict.get("version")
        uid = message.get(UID)
        row.update({
            "key": str(message.get("key") or "")[:256],
            "schema": str(verdict.get("schema") or "")[:256],
            "version": version if isinstance(version, int) and 0 <= version < 2**32 else 0,
            "uid": int(uid) if isinstance(uid, str) and uid.isdigit() and int(uid) < 2**64 else 0,
            "errors.path": [str(e.get("path", ""))[:1024] for e in errors],
            "errors.rule": [str(e.get("rule", ""))[:64] for e in errors],
            "errors.message": [str(e.get("message", ""))[:1024] for e in errors],
        })
        return FAILED_EVENTS, row

    def _kept(self, table: str, message: Any, fallback_id: int, fallback_ms: int, seq: int) -> dict[str, Any]:
        """What ``bad_rows`` and ``failed_events`` share: the id, times, bot reason and the
        whole message as text, for an event kept whole rather than as a row of its table."""
        row: dict[str, Any] = {STREAM_SEQ.name: seq}
        event_id = message.get("id") if isinstance(message, Mapping) else None
        row["id"] = int(event_id) if isinstance(event_id, str) and event_id.isdigit() and int(event_id) < 2**64 else fallback_id
        columns = self.layouts[table].table.columns
        self._times(row, message.get("time") if isinstance(message, Mapping) else None, fallback_ms,
                    {name: name for name in columns})
        bot = message.get(wire.BOT_FIELD) if isinstance(message, Mapping) else None
        if isinstance(bot, str) and wire.BOT_FIELD in columns:
            row[wire.BOT_FIELD] = bot[:64]
        row["message"] = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False, default=str)
        return row

    # --- pieces --------------------------------------------------------------------
    def _walk(self, layout: TableLayout, row: list[Any], extras: dict[str, tuple[list[str], list[str]]],
              roots: list[dict[str, Any]]) -> None:
        """Every leaf under ``roots`` (objects at the event's root) into ``row``: the hot
        loop of the store, one trie step per key and, for a text or in-range integer
        value, no call at all. Entry fields by number (``_KIDS`` = 0 ... ``_HIGH`` = 8):
        a constant index is cheaper than a global's."""
        quarter, limit, child_of = self._quarter, self._max, layout.child
        stack = [(value, layout.root) for value in roots]
        pop, push = stack.pop, stack.append
        while stack:
            node, parent = pop()
            level = parent[0]
            for key, child in node.items():
                entry = level.get(key)
                if entry is None:
                    entry = child_of(parent, key)
                kind = type(child)
                if kind is entry[2]:  # the column's plain type: text into text, an integer into an integer
                    if kind is str:
                        if len(child) > quarter and len(child.encode()) > limit:
                            raise BadRow(f"{'.'.join(entry[1])} is {len(child.encode())} bytes, over max_value_bytes {limit}")
                        row[entry[3]] = child
                        continue
                    if entry[7] <= child <= entry[8]:
                        row[entry[3]] = child
                        continue
                elif kind is dict:  # JSON objects are plain dicts: no ABC check on the hot path
                    push((child, entry))
                    continue
                elif child is None:
                    continue
                elif kind is str and len(child) > quarter and len(child.encode()) > limit:
                    raise BadRow(f"{'.'.join(entry[1])} is {len(child.encode())} bytes, over max_value_bytes {limit}")
                convert = entry[4]
                if convert is not None:
                    try:
                        row[entry[3]] = convert(child)
                        continue
                    except Misfit:
                        pass
                bucket = extras.get(entry[5])
                if bucket is None:
                    bucket = extras[entry[5]] = ([], [])
                bucket[0].append(entry[6])
                bucket[1].append(child if kind is str else text(child))

    def _copy(self, layout: TableLayout, row: list[Any], column: str, at: int, message: Mapping[str, Any],
              paths: tuple[tuple[str, ...], ...]) -> None:
        for path in paths:
            value: Any = message
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if value is None or isinstance(value, (dict, list)):
                continue
            try:
                row[at] = layout.columns[column](value)
                return
            except Misfit:
                continue

    @staticmethod
    def _times(row: Any, time_ms: Any, fallback_ms: int, position: Mapping[str, Any]) -> int:
        """``date``, ``dateTime`` and ``timestamp`` in UTC from the event's ``time`` (ms),
        each where the table has that column (``row`` a list by ``position``, or a dict
        when ``position`` maps each name to itself); returns the time in ms."""
        ms = time_ms if isinstance(time_ms, int) and not isinstance(time_ms, bool) and 0 < time_ms < 2**42 else fallback_ms
        seconds = ms // 1000
        if "date" in position:
            row[position["date"]] = _day(seconds // 86400)
        if "dateTime" in position:
            row[position["dateTime"]] = seconds
        if "timestamp" in position:
            row[position["timestamp"]] = ms
        return ms


__all__ = [
    "UID",
    "BadRow",
    "RowBuilder",
    "TableLayout",
]
