"""From an event message to a table row: routing, flattening, ``_extra``, UTC dates.

- Table: ``destinations["<service>/<name>"]`` (name lower-cased, whitespace → ``_``),
  else ``"<service>/default"``, else ``"other"``.
- Row: ``copy_props`` from the message (``td`` flattened to ``td_*``); ``date``,
  ``dateTime`` (UTC) and ``timestamp`` (ms) from ``time``; ``data`` flattened with ``_``
  (``data.page.title`` → ``page_title``). A leaf with no column of its name, or whose
  value does not fit the column's type, goes to the nearest ancestor's ``<prefix>_extra``
  (key relative to it, value as text), else the root ``extra``: never dropped.
- ``copy`` fills a column from the first of its paths present (``td_fpid`` from ``data.fpid``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Mapping

from .config import BAD_ROWS, StoreConfig, route_key
from .schema import Table
from .values import Converter, Misfit, converter, text

_EPOCH = dt.date(1970, 1, 1)


class BadRow(ValueError):
    """The event cannot be a row (a value over ``max_value_bytes``): it goes to ``bad_rows``."""


@dataclass(frozen=True)
class _Slot:
    """Where one flattened path lands in one table: a column, or an ``_extra`` entry."""

    column: str | None
    convert: Converter | None
    extra: str  # the extra's prefix ("" = root extra), used when column is None or the value misfits
    key: str  # the key inside that extra


class TableLayout:
    """One table's columns and extras, with the path → slot answers cached in a trie
    (one dict per level, walked beside the event, so a known path costs a dict lookup
    per key and no tuple)."""

    MAX_CACHED = 100_000  # paths from a hostile client cannot grow the cache forever

    def __init__(self, table: Table) -> None:
        self.table = table
        self.columns = {name: converter(col.type) for name, col in table.columns.items() if "." not in name}
        self.extras = table.extra_prefixes()
        self.trie: dict[str, list[Any]] = {}  # key -> [slot of this path or None, trie of the level below]
        self._cached = 0

    def child(self, trie: dict[str, list[Any]], key: str) -> list[Any]:
        """The trie entry of ``key`` (a throwaway one once the cache is full)."""
        entry = trie.get(key)
        if entry is None:
            entry = [None, {}]
            if self._cached < self.MAX_CACHED:
                trie[key] = entry
                self._cached += 1
        return entry

    def slot(self, path: tuple[str, ...]) -> _Slot:
        name = "_".join(path)
        extra, key = self._nearest_extra(path)
        convert = self.columns.get(name)
        return _Slot(name if convert is not None else None, convert, extra, key)

    def _nearest_extra(self, path: tuple[str, ...]) -> tuple[str, str]:
        for cut in range(len(path) - 1, 0, -1):
            prefix = "_".join(path[:cut])
            if prefix in self.extras:
                return prefix, "_".join(path[cut:])
        return "", "_".join(path)


class RowBuilder:
    """Builds rows for every routed table of one :class:`StoreConfig`."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.layouts = {name: TableLayout(t) for name, t in config.tables.items()}
        self._copy_props = tuple(p for p in config.copy_props if p != "td")
        self._flatten_td = "td" in config.copy_props
        self._max = config.max_value_bytes
        self._quarter = self._max // 4  # a str of fewer chars cannot exceed the limit in UTF-8

    def route(self, service: Any, name: Any) -> str:
        destinations = self.config.destinations
        service_text = str(service or "")
        return (
            destinations.get(route_key(f"{service_text}/{name or ''}"))
            or destinations.get(f"{service_text}/default")
            or destinations["other"]
        )

    def build(self, message: Mapping[str, Any], fallback_id: int = 0, fallback_ms: int = 0) -> tuple[str, dict[str, Any]]:
        """``(table, row)`` for ``message``.

        ``fallback_id`` stands in for a missing or non-numeric ``id`` and
        ``fallback_ms`` for a missing ``time`` (both from the stream message).

        Raises:
            BadRow: a value too large for any column.
        """
        table = self.route(message.get("service"), message.get("name"))
        layout = self.layouts[table]
        row: dict[str, Any] = {}
        extras: dict[str, tuple[list[str], list[str]]] = {}
        for prop in self._copy_props:
            if prop in message and prop not in ("data",):
                self._put(layout, row, extras, (prop,), message[prop])
        if self._flatten_td and isinstance(message.get("td"), dict):
            self._walk(layout, row, extras, ("td",), message["td"])
        data = message.get("data")
        if isinstance(data, dict):
            self._walk(layout, row, extras, (), data)
        elif data is not None:
            self._put(layout, row, extras, ("data",), data)
        if isinstance(message.get("params"), Mapping):
            self._walk(layout, row, extras, ("params",), message["params"])
        for column, paths in self.config.copy.items():
            if column in layout.columns and column not in row:
                self._copy(layout, row, column, message, paths)
        if not isinstance(row.get("id"), int) or row.get("id") == 0:
            row["id"] = fallback_id
        self._times(row, message.get("time"), fallback_ms, layout.columns)
        for prefix, (keys, values) in extras.items():
            base = f"{prefix}_extra" if prefix else "extra"
            row[f"{base}.key"], row[f"{base}.value"] = keys, values
        return table, row

    def bad_row(self, message: Any, table: str, reason: str, fallback_id: int, fallback_ms: int) -> tuple[str, dict[str, Any]]:
        """The ``bad_rows`` row that keeps an event whole, with why it is there."""
        row: dict[str, Any] = {"table": table, "reason": reason[:4096]}
        event_id = message.get("id") if isinstance(message, Mapping) else None
        row["id"] = int(event_id) if isinstance(event_id, str) and event_id.isdigit() and int(event_id) < 2**64 else fallback_id
        self._times(row, message.get("time") if isinstance(message, Mapping) else None, fallback_ms,
                    self.layouts[BAD_ROWS].columns)
        row["message"] = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False, default=str)
        return BAD_ROWS, row

    # --- pieces --------------------------------------------------------------------
    def _walk(self, layout: TableLayout, row: dict[str, Any], extras: dict[str, tuple[list[str], list[str]]],
              path: tuple[str, ...], value: Mapping[str, Any]) -> None:
        """Every leaf under ``value`` into ``row``: the hot loop of the store."""
        quarter, child_of = self._quarter, layout.child
        trie = layout.trie
        for key in path:
            trie = child_of(trie, key)[1]
        stack = [(path, value, trie)]
        while stack:
            prefix, node, level = stack.pop()
            for key, child in node.items():
                entry = level.get(key) or child_of(level, key)
                kind = type(child)
                if kind is dict:  # JSON objects are plain dicts: no ABC check on the hot path
                    stack.append((prefix + (key,), child, entry[1]))
                    continue
                if child is None:
                    continue
                if kind is str and len(child) > quarter and len(child.encode()) > self._max:
                    where = ".".join(prefix + (key,))
                    raise BadRow(f"{where} is {len(child.encode())} bytes, over max_value_bytes {self._max}")
                slot = entry[0]
                if slot is None:
                    slot = entry[0] = layout.slot(prefix + (key,))
                convert = slot.convert
                if convert is not None:
                    try:
                        row[slot.column] = convert(child)
                        continue
                    except Misfit:
                        pass
                bucket = extras.get(slot.extra)
                if bucket is None:
                    bucket = extras[slot.extra] = ([], [])
                bucket[0].append(slot.key)
                bucket[1].append(child if kind is str else text(child))

    def _put(self, layout: TableLayout, row: dict[str, Any], extras: dict[str, tuple[list[str], list[str]]],
             path: tuple[str, ...], value: Any) -> None:
        """One value at ``path``, by the same loop as every other leaf."""
        self._walk(layout, row, extras, path[:-1], {path[-1]: value})

    def _copy(self, layout: TableLayout, row: dict[str, Any], column: str, message: Mapping[str, Any],
              paths: tuple[str, ...]) -> None:
        for path in paths:
            value: Any = message
            for part in path.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            if value is None or isinstance(value, (Mapping, list)):
                continue
            try:
                row[column] = layout.columns[column](value)
                return
            except Misfit:
                continue

    @staticmethod
    def _times(row: dict[str, Any], time_ms: Any, fallback_ms: int, columns: Mapping[str, Any]) -> None:
        """``date``, ``dateTime`` and ``timestamp`` in UTC from the event's ``time`` (ms),
        each where the table has that column."""
        ms = time_ms if isinstance(time_ms, int) and not isinstance(time_ms, bool) and 0 < time_ms < 2**42 else fallback_ms
        seconds = ms // 1000
        if "date" in columns:
            row["date"] = (_EPOCH + dt.timedelta(days=seconds // 86400)).isoformat()
        if "dateTime" in columns:
            row["dateTime"] = seconds
        if "timestamp" in columns:
            row["timestamp"] = ms
