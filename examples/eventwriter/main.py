"""Every event, stored once, in SQLite; query it over RPC.

The listener is a JetStream durable consumer: an event is acked only after its row
is written, so a crash or restart redelivers it. The message id is the primary key
and rows are INSERT OR IGNORE, so a redelivery never stores an event twice.
"""

import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

from band import blocking, expose, settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    uid TEXT,
    time INTEGER,
    message TEXT NOT NULL
)"""


_prepared: set[str] = set()
_preparing = threading.Lock()


def connect(path: str) -> sqlite3.Connection:
    """One connection per call: @blocking runs each call in whichever thread is free."""
    with _preparing:  # once per file: switching to WAL is refused (not waited) while another connection holds it
        if path not in _prepared:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(path, timeout=10)) as db:
                db.execute('PRAGMA journal_mode=WAL')  # readers do not block the writer
                db.execute(SCHEMA)
            _prepared.add(path)
    return sqlite3.connect(path, timeout=10)


@blocking()
def store(path: str, message: dict[str, Any]) -> None:
    with closing(connect(path)) as db, db:
        db.execute(
            'INSERT OR IGNORE INTO events (id, key, uid, time, message) VALUES (?, ?, ?, ?, ?)',
            (message['id'], message['key'], message.get('uid'), message.get('time'), json.dumps(message)),
        )


@blocking()
def query(path: str, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with closing(connect(path)) as db:
        return db.execute(sql, args).fetchall()


@expose.listener(durable=True)
async def broadcast(attempt__: int = 1, **message: Any) -> None:
    """Raising here (a full disk) leaves the event unacked: it is delivered again."""
    await store(settings.db, message)


def where(key: str | None) -> tuple[str, tuple[Any, ...]]:
    """SQL for a routing-key prefix by whole tokens (in.gen.track matches in.gen.track.page); values are bound."""
    return ('', ()) if key is None else (' WHERE key = ? OR key GLOB ?', (key, f'{key}.*'))


@expose()
async def count(key: str | None = None) -> int:
    """Events stored, all or under the routing-key prefix `key`."""
    sql, args = where(key)
    rows = await query(settings.db, f'SELECT COUNT(*) FROM events{sql}', args)
    return int(rows[0][0])


@expose()
async def recent(limit: int = 10, key: str | None = None) -> list[dict[str, Any]]:
    """The newest `limit` events (at most 1000) by event time, all or under `key`."""
    sql, args = where(key)
    order = ' ORDER BY time DESC, rowid DESC LIMIT ?'
    rows = await query(settings.db, f'SELECT message FROM events{sql}{order}', (*args, max(1, min(int(limit), 1000))))
    return [json.loads(row[0]) for row in rows]
