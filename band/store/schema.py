"""The store's tables as data: read from config (YAML), turned into ClickHouse DDL.

A table is a mapping ``column: type`` plus ``_options`` (``extend`` another table,
``abstract`` for a base that is never created, ``order_by``, ``partition_by``,
``engine``, ``settings``, ``ttl`` and ``ttl_column`` for retention). ``Nested(key String, value String)`` stands for the two
``Array`` columns ``<name>.key`` and ``<name>.value``, as ClickHouse stores it.
Nothing here talks to ClickHouse: :mod:`band.store.migrate` applies what this builds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._core.units import Duration, duration
from ..errors import ConfigError

DEFAULT_ENGINE = "MergeTree"
DEFAULT_PARTITION = "toYYYYMM(date)"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*\Z")
_NESTED = re.compile(r"^Nested\s*\((.*)\)\s*\Z", re.S)
_OPTIONS = {"extend", "abstract", "order_by", "partition_by", "engine", "settings", "ttl", "ttl_column"}
TTL_COLUMNS = ("dateTime", "date")  # the time column a TTL counts from, unless ``ttl_column`` names one
_TIME_TYPE = re.compile(r"^(Date|DateTime)(\(.*\))?\Z")  # what a ClickHouse TTL may count from


@dataclass(frozen=True)
class Column:
    """One column as ClickHouse lists it in ``system.columns`` (Nested already split)."""

    name: str
    type: str  # the type, without a DEFAULT clause
    default: str = ""  # the DEFAULT expression, "" for none

    def ddl(self) -> str:
        tail = f" DEFAULT {self.default}" if self.default else ""
        return f"{quote(self.name)} {self.type}{tail}"


@dataclass
class Table:
    name: str
    columns: dict[str, Column] = field(default_factory=dict)
    order_by: str = "tuple()"
    partition_by: str = ""
    engine: str = DEFAULT_ENGINE
    settings: dict[str, Any] = field(default_factory=dict)
    ttl: Duration | None = None  # rows older than this are deleted by ClickHouse (None: kept)
    ttl_column: str = ""

    def ttl_expression(self) -> str:
        """``dateTime + toIntervalMonth(13)``, as ClickHouse shows it back; "" for none."""
        column = self.ttl_column if _NAME.match(self.ttl_column) else quote(self.ttl_column)
        return f"{column} + {self.ttl.interval()}" if self.ttl is not None else ""

    def create_sql(self, database: str) -> str:
        cols = ",\n  ".join(c.ddl() for c in self.columns.values())
        sql = f"CREATE TABLE IF NOT EXISTS {quote(database)}.{quote(self.name)} (\n  {cols}\n) ENGINE = {self.engine}"
        if self.partition_by:
            sql += f"\nPARTITION BY {self.partition_by}"
        sql += f"\nORDER BY {self.order_by}"
        if self.ttl is not None:
            sql += f"\nTTL {self.ttl_expression()}"
        if self.settings:
            sql += "\nSETTINGS " + ", ".join(f"{k} = {_literal(v)}" for k, v in self.settings.items())
        return sql

    def add_column_sql(self, database: str, column: Column) -> str:
        return f"ALTER TABLE {quote(database)}.{quote(self.name)} ADD COLUMN IF NOT EXISTS {column.ddl()}"

    def ttl_sql(self, database: str) -> str:
        """The table's TTL made what config says: ``MODIFY TTL`` (ClickHouse then
        recomputes it for the stored parts in the background), or ``REMOVE TTL``."""
        change = f"MODIFY TTL {self.ttl_expression()}" if self.ttl is not None else "REMOVE TTL"
        return f"ALTER TABLE {quote(database)}.{quote(self.name)} {change}"

    def extra_prefixes(self) -> frozenset[str]:
        """Prefixes ``p`` with a ``p_extra`` key/value pair (``""`` for a root ``extra``)."""
        found = set()
        for name in self.columns:
            if name.endswith(".key") and name[:-4].endswith("extra") and name[:-4] + ".value" in self.columns:
                base = name[:-4]
                if base == "extra":
                    found.add("")
                elif base.endswith("_extra"):
                    found.add(base[: -len("_extra")])
        return frozenset(found)


def quote(name: str) -> str:
    """A backquoted identifier (names such as ``td_extra.key`` hold a dot)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _literal(value: Any) -> str:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "'" + str(value).replace("'", "\\'") + "'"


def parse_column(table: str, name: str, spec: Any) -> list[Column]:
    """``"Int8 DEFAULT -1"`` → one column; ``"Nested(key String, value String)"`` → two."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"table {table!r}: column {name!r} needs a ClickHouse type as text, got {spec!r}")
    if not _COLUMN.match(name):
        raise ConfigError(f"table {table!r}: {name!r} is not a column name (letters, digits, '_' and '.')")
    nested = _NESTED.match(spec.strip())
    if nested:
        parts = [p.strip() for p in nested.group(1).split(",") if p.strip()]
        out = []
        for part in parts:
            sub, _, sub_type = part.partition(" ")
            if not sub or not sub_type.strip():
                raise ConfigError(f"table {table!r}: column {name!r}: {part!r} is not 'name Type'")
            out.append(Column(f"{name}.{sub}", f"Array({sub_type.strip()})"))
        return out
    type_, sep, default = spec.strip().partition(" DEFAULT ")
    return [Column(name, type_.strip(), default.strip() if sep else "")]


def build_tables(spec: Mapping[str, Any]) -> dict[str, Table]:
    """Resolve ``extend`` chains; return the concrete (non-abstract) tables by name.

    Raises:
        ConfigError: an unknown option, a missing or circular ``extend``, a bad column.
    """
    raw: dict[str, Mapping[str, Any]] = {}
    for name, body in spec.items():
        if not _NAME.match(str(name)):
            raise ConfigError(f"{name!r} is not a table name (letters, digits and '_')")
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ConfigError(f"table {name!r} must be a mapping of column: type")
        options = body.get("_options") or {}
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ConfigError(f"table {name!r}: unknown _options {sorted(unknown)} (known: {sorted(_OPTIONS)})")
        raw[str(name)] = body

    resolved: dict[str, Table] = {}

    def resolve(name: str, seen: tuple[str, ...]) -> Table:
        if name in resolved:
            return resolved[name]
        if name in seen:
            raise ConfigError(f"tables extend each other in a circle: {' -> '.join((*seen, name))}")
        if name not in raw:
            raise ConfigError(f"table {seen[-1]!r} extends {name!r}, which is not defined")
        body = raw[name]
        options = body.get("_options") or {}
        parent_name = options.get("extend")
        table = Table(name)
        if parent_name:
            parent = resolve(str(parent_name), (*seen, name))
            table.columns = dict(parent.columns)
            table.order_by, table.partition_by = parent.order_by, parent.partition_by
            table.engine, table.settings = parent.engine, dict(parent.settings)
            table.ttl, table.ttl_column = parent.ttl, parent.ttl_column
        for column_name, column_spec in body.items():
            if column_name == "_options":
                continue
            for column in parse_column(name, str(column_name), column_spec):
                table.columns[column.name] = column
        table.order_by = str(options.get("order_by") or table.order_by)
        default_partition = DEFAULT_PARTITION if "date" in table.columns else ""
        table.partition_by = str(options.get("partition_by", table.partition_by or default_partition) or "")
        table.engine = str(options.get("engine") or table.engine)
        table.settings.update(options.get("settings") or {})
        _retention(table, options)
        resolved[name] = table
        return table

    for name in raw:
        resolve(name, ())
    return {name: t for name, t in resolved.items() if not (raw[name].get("_options") or {}).get("abstract")}


def _retention(table: Table, options: Mapping[str, Any]) -> None:
    """``ttl`` and ``ttl_column`` (their own, else the parent's), checked against the columns."""
    if "ttl" in options:
        table.ttl = duration(options["ttl"], f"table {table.name!r}: _options.ttl")
    if options.get("ttl_column"):
        table.ttl_column = str(options["ttl_column"])
    if table.ttl is None:
        return
    if not table.ttl_column or table.ttl_column not in table.columns:
        named = options.get("ttl_column") or table.ttl_column
        if named:
            raise ConfigError(f"table {table.name!r}: _options.ttl_column is {named!r}, which is not a column of the table")
        table.ttl_column = next((c for c in TTL_COLUMNS if c in table.columns), "")
        if not table.ttl_column:
            raise ConfigError(f"table {table.name!r}: _options.ttl needs a time column to count from: the table has neither "
                              f"{' nor '.join(TTL_COLUMNS)}; name one with _options.ttl_column")
    if not _TIME_TYPE.match(table.columns[table.ttl_column].type):
        raise ConfigError(f"table {table.name!r}: _options.ttl_column {table.ttl_column!r} is "
                          f"{table.columns[table.ttl_column].type}; a TTL counts from a Date or DateTime column")


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """A user's store.yml over the defaults: mappings merge key by key, the rest replaces."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


__all__ = [
    "DEFAULT_ENGINE",
    "DEFAULT_PARTITION",
    "TTL_COLUMNS",
    "Column",
    "Table",
    "build_tables",
    "merge",
    "parse_column",
    "quote",
]
