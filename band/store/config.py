"""The store's configuration: the stock config.yml, a user's store.yml over it.

:class:`StoreConfig` holds the resolved tables, the routing and the copied fields;
:func:`load` builds it from files, :meth:`StoreConfig.from_mapping` from a dict (tests).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._core import settings as band_config
from ..errors import ConfigError
from .http import Limits
from .http import Settings as HttpSettings
from .schema import Column, Table, build_tables, merge

SERVICE_DIR = Path(__file__).resolve().parent / "service"
ROOT_EXTRA = (Column("extra.key", "Array(String)"), Column("extra.value", "Array(String)"))
BAD_ROWS = "bad_rows"
FAILED_EVENTS = "failed_events"  # events a schema in enforce mode refused (band/schemas.py), when the table exists
# The identity graph's tables (docs/identity.md): written by the store alone, in stream order.
IDENTITIES = "identities"
PERSON_OF_UID = "person_of_uid"
PERSON_TRAITS = "person_traits"
IDENTITY_LOG = "identity_log"
IDENTITY_TABLES = (PERSON_TRAITS, IDENTITY_LOG, PERSON_OF_UID, IDENTITIES)  # the order a batch inserts them
# The stream sequence of the message a row came from: every table the store writes has it
# (see writer.py), filled by the store alone, so a user's table need not declare it.
STREAM_SEQ = Column("stream_seq", "UInt64")
_SPACE = re.compile(r"\s+")
_VIEW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class StoreConfig:
    tables: dict[str, Table]
    destinations: dict[str, str]
    copy_props: tuple[str, ...]
    copy: dict[str, tuple[str, ...]]
    database: str = "stats"
    data_dir: Path = Path(".band/store")
    clickhouse_url: str = ""
    batch_rows: int = 5000
    batch_seconds: float = 1.0
    max_value_bytes: int = 65536
    build_processes: str = "auto"
    insertable: frozenset[str] = frozenset()
    views: dict[str, str] = field(default_factory=dict)  # name -> SELECT, {database} filled in
    migrations: Path | None = None
    http: HttpSettings = field(default_factory=lambda: HttpSettings(port=0))
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base_dir: Path | None = None) -> StoreConfig:
        """Validate a merged config mapping.

        Raises:
            ConfigError: a table, destination or option that cannot work, named.
        """
        tables = build_tables(data.get("tables") or {})
        destinations = {route_key(str(k)): str(v) for k, v in (data.get("destinations") or {}).items()}
        if "other" not in destinations:
            raise ConfigError("destinations needs an 'other' entry: where events no rule names go")
        for rule, table in destinations.items():
            if table not in tables:
                raise ConfigError(f"destination {rule!r} names table {table!r}, which is not defined under tables")
            if not any(c.name == "extra.key" for c in tables[table].columns.values()):
                for column in ROOT_EXTRA:  # nothing is ever dropped: a root extra catches the rest
                    tables[table].columns[column.name] = column
        if BAD_ROWS not in tables:
            raise ConfigError(f"the store needs a {BAD_ROWS!r} table (the stock config defines it)")
        for name in sorted(set(destinations.values()) | {BAD_ROWS} | ({FAILED_EVENTS} & tables.keys())):
            if tables[name].columns.setdefault(STREAM_SEQ.name, STREAM_SEQ).type != STREAM_SEQ.type:
                raise ConfigError(f"table {name!r}: {STREAM_SEQ.name} is the store's own column ({STREAM_SEQ.type}, "
                                  "the stream sequence of each row); give your column another name")
        copy = {str(col): tuple(str(p) for p in (paths if isinstance(paths, list) else [paths]))
                for col, paths in (data.get("copy") or {}).items()}
        migrations = data.get("migrations")
        base = base_dir or Path.cwd()
        try:
            return cls(
                tables=tables,
                destinations=destinations,
                copy_props=tuple(str(p) for p in data.get("copy_props") or ()),
                copy=copy,
                database=str(data.get("database") or "stats"),
                data_dir=Path(str(data.get("data_dir") or ".band/store")),
                clickhouse_url=str(data.get("clickhouse_url") or ""),
                batch_rows=max(1, int(data.get("batch_rows") or 5000)),
                batch_seconds=max(0.01, float(data.get("batch_seconds") or 1.0)),
                max_value_bytes=int(data.get("max_value_bytes") or 65536),
                build_processes=_processes(data.get("build_processes", "auto")),
                insertable=frozenset(str(t) for t in data.get("insertable") or ()),
                views=_views(data.get("views")),
                migrations=(base / str(migrations)) if migrations else (base / "migrations"),
                http=_http(data, str(data.get("database") or "stats")),
                raw=dict(data),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"store config: {exc}") from None

    def routed_tables(self) -> frozenset[str]:
        return frozenset(self.destinations.values()) | {BAD_ROWS} | ({FAILED_EVENTS} & self.tables.keys())

    def may_insert(self, table: str) -> bool:
        """Services write their own tables; the event tables only when config allows."""
        if table in IDENTITY_TABLES:  # the graph is rebuilt from the stream: rows from elsewhere would be lost
            return False
        return table in self.tables and (table not in self.routed_tables() or table in self.insertable)

    def identity_ready(self) -> bool:
        """The config has the identity graph's tables (the stock config does)."""
        return all(name in self.tables for name in IDENTITY_TABLES)


def _views(value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("store config: views must be a mapping of name: SELECT ...")
    out = {}
    for name, sql in value.items():
        if not _VIEW_NAME.match(str(name)):
            raise ConfigError(f"store config: {name!r} is not a view name (letters, digits and '_')")
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError(f"store config: view {name!r} needs its SELECT as text")
        out[str(name)] = sql.strip()
    return out


def _processes(value: Any) -> str:
    text = str(value).strip().lower()
    if text != "auto" and not (text.isdigit() and int(text) <= 64):
        raise ConfigError(f"store config: build_processes is {value!r}; use auto or a number of processes from 0 to 64")
    return text


def _http(data: Mapping[str, Any], database: str) -> HttpSettings:
    """The ClickHouse HTTP interface's settings (``http_*``; off when ``http_port`` is 0 or absent)."""
    def number(key: str, default: float) -> float:
        value = data.get(key)
        try:
            return float(default if value in (None, "") else value)
        except (TypeError, ValueError):
            raise ConfigError(f"store config: {key} is {value!r}; use a number") from None

    port = int(number("http_port", 0))
    if not 0 <= port < 65536:
        raise ConfigError(f"store config: http_port (STORE_HTTP_PORT) is {port}; use a port from 1 to 65535, or 0 for off")
    limits = Limits(max_execution_time=number("http_max_execution_time", 300), max_result_rows=int(number("http_max_result_rows", 0)),
                    max_result_bytes=int(number("http_max_result_bytes", 0)),
                    max_query_bytes=int(number("http_max_query_bytes", 1 << 20)))
    return HttpSettings(host=str(data.get("http_host") or "127.0.0.1"), port=port, user=str(data.get("http_user") or "default"),
                        password=str(data.get("http_password") or ""), database=database, limits=limits)


def route_key(rule: str) -> str:
    """``"<service>/<name>"`` as routing compares it: name lower-cased, whitespace runs as ``_``."""
    service, sep, name = rule.partition("/")
    return f"{service}{sep}{_SPACE.sub('_', name.strip().lower())}" if sep else rule


def load(settings: Mapping[str, Any] | None = None, overlay: str | Path | None = None) -> StoreConfig:
    """The stock config (``settings`` as band loaded it, else read here) and the overlay file over it.

    The overlay is ``overlay``, else the setting ``overlay`` (``$STORE_CONFIG``, default
    ``store.yml``); a missing default file is fine, a missing named one is an error.
    """
    data: dict[str, Any] = dict(settings) if settings is not None else band_config.load(SERVICE_DIR).to_dict()
    named = overlay or os.environ.get("STORE_CONFIG")
    path = Path(str(named or data.get("overlay") or "store.yml"))
    base_dir = Path.cwd()
    if path.is_file():
        extra = band_config.parse(path.read_text(encoding="utf-8"), str(path))
        data = merge(data, extra)
        base_dir = path.resolve().parent
    elif named:
        raise ConfigError(f"store config {path} does not exist")
    return StoreConfig.from_mapping(_plain(data), base_dir)


def _plain(value: Any) -> Any:
    """Settings objects to plain dicts and lists, all the way down."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


__all__ = [
    "BAD_ROWS",
    "FAILED_EVENTS",
    "IDENTITIES",
    "IDENTITY_LOG",
    "IDENTITY_TABLES",
    "PERSON_OF_UID",
    "PERSON_TRAITS",
    "ROOT_EXTRA",
    "SERVICE_DIR",
    "STREAM_SEQ",
    "StoreConfig",
    "load",
    "route_key",
]
