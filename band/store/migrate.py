"""Bring the database to the config: create what is missing, add missing columns,
apply ``migrations/*.sql`` once each, then make the config's views again (a view keeps
the columns its tables had when it was made). Nothing is ever dropped or retyped."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .backend import Backend
from .config import StoreConfig
from .schema import quote

MIGRATIONS_TABLE = "migrations"


@dataclass
class Changes:
    """What :func:`ensure` did, for the log."""

    created: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)  # "table.column"
    mismatched: list[str] = field(default_factory=list)  # "table.column: have X, config says Y"
    migrations: list[str] = field(default_factory=list)


def ensure(backend: Backend, config: StoreConfig) -> Changes:
    """Create the database and tables, add missing columns, run new migrations."""
    db = config.database
    changes = Changes()
    backend.command(f"CREATE DATABASE IF NOT EXISTS {quote(db)}")
    existing = _columns(backend, db)
    for table in config.tables.values():
        have = existing.get(table.name)
        if have is None:
            backend.command(table.create_sql(db))
            changes.created.append(table.name)
            continue
        for column in table.columns.values():
            if column.name not in have:
                backend.command(table.add_column_sql(db, column))
                changes.added.append(f"{table.name}.{column.name}")
            elif _norm(have[column.name]) != _norm(column.type):
                changes.mismatched.append(f"{table.name}.{column.name}: have {have[column.name]}, config says {column.type}")
    backend.command(
        f"CREATE TABLE IF NOT EXISTS {quote(db)}.{MIGRATIONS_TABLE} (name String, timestamp UInt64) "
        "ENGINE = MergeTree ORDER BY name"
    )
    if config.migrations is not None:
        changes.migrations = apply_migrations(backend, db, config.migrations)
    for name, sql in config.views.items():  # made again each start: a view keeps the columns it was made with
        body = sql.replace("{database}", quote(db))
        backend.command(f"CREATE OR REPLACE VIEW {quote(db)}.{quote(name)} AS {body}")
    return changes


def _norm(type_: str) -> str:
    return type_.replace(" ", "").replace("\"", "'")


def _columns(backend: Backend, db: str) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    result = backend.select(
        "SELECT table, name, type FROM system.columns WHERE database = {db:String}", {"db": db}
    )
    for row in result["rows"]:
        found.setdefault(row["table"], {})[row["name"]] = row["type"]
    return found


def statements(sql: str) -> list[str]:
    """A migration file's statements: split at a ``;`` that ends a line."""
    out, current = [], []
    for line in sql.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(current).rstrip().rstrip(";").strip())
            current = []
    tail = "\n".join(current).strip()
    if tail:
        out.append(tail)
    return [s for s in out if s and not all(line.strip().startswith("--") or not line.strip() for line in s.splitlines())]


def apply_migrations(backend: Backend, db: str, folder: Path) -> list[str]:
    """Run each ``*.sql`` in ``folder`` not yet in ``<db>.migrations``, in name order."""
    if not folder.is_dir():
        return []
    done = {row["name"] for row in backend.select(f"SELECT name FROM {quote(db)}.{MIGRATIONS_TABLE}")["rows"]}
    applied = []
    for path in sorted(folder.glob("*.sql")):
        if path.name in done:
            continue
        for statement in statements(path.read_text(encoding="utf-8")):
            backend.command(statement)
        body = f'{{"name": {_json(path.name)}, "timestamp": {int(time.time() * 1000)}}}\n'.encode()
        backend.insert(db, MIGRATIONS_TABLE, body)
        applied.append(path.name)
    return applied


def _json(text: str) -> str:
    import json

    return json.dumps(text)


__all__ = [
    "MIGRATIONS_TABLE",
    "Changes",
    "apply_migrations",
    "ensure",
    "statements",
]
