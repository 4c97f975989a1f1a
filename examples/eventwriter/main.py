"""Every event, stored once, in SQLite; query it over RPC.

The listener is a JetStream durable consumer: an event is acked only after its row
is committed, so a crash or restart redelivers it. The message id is the primary key
and rows are INSERT OR IGNORE, so a redelivery never stores an event twice.

Writes are batched, as band's own store does: each event joins the batch being
filled and waits for its commit; one writer commits a batch per transaction on one
connection. A commit per event cost a core at 1,000 events/s, and parallel commits
from several threads made SQLite answer "database is locked".
"""

import asyncio
import json
import sqlite3
import threading
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from band import blocking, cleanup, expose, settings, worker

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    uid TEXT,
    time INTEGER,
    message TEXT NOT NULL
)"""
INSERT = 'INSERT OR IGNORE INTO events (id, key, uid, time, message) VALUES (?, ?, ?, ?, ?)'
BATCH_ROWS = 500  # a batch is committed when it holds this many events...
BATCH_SECONDS = 0.2  # ...or is this old


_prepare = threading.Lock()
_prepared: set[str] = set()


def connect(path: str) -> sqlite3.Connection:
    """A connection to the events file, prepared once (WAL, so readers never block the
    writer; the table) under a lock: two first connections switching to WAL at once get
    "database is locked" (SQLite does not wait for that lock)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10, check_same_thread=False)
    with _prepare:
        if path not in _prepared:
            db.execute('PRAGMA journal_mode=WAL')
            db.execute(SCHEMA)
            _prepared.add(path)
    return db


class Batches:
    """Events waiting for their commit. Only the writer commits, one batch at a time."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.committed: asyncio.Future[None] | None = None  # resolved when ``rows`` is in the file
        self.first = asyncio.Event()  # the batch being filled has an event
        self.full = asyncio.Event()  # ...and BATCH_ROWS of them

    def add(self, row: tuple[Any, ...]) -> 'asyncio.Future[None]':
        if self.committed is None:
            self.committed = asyncio.get_running_loop().create_future()
        self.rows.append(row)
        self.first.set()
        if len(self.rows) >= BATCH_ROWS:
            self.full.set()
        return self.committed

    def take(self) -> tuple[list[tuple[Any, ...]], 'asyncio.Future[None] | None']:
        rows, committed = self.rows, self.committed
        self.rows, self.committed = [], None
        self.first.clear()
        self.full.clear()
        return rows, committed


batches = Batches()
writer_db: list[sqlite3.Connection] = []  # the writer's one connection, opened by the writer


@blocking()
def commit(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    with db:
        db.executemany(INSERT, rows)


@worker()
async def write() -> None:
    """Commit the batch being filled once it is full or BATCH_SECONDS old."""
    db = connect(settings.db)
    writer_db.append(db)
    while True:
        await batches.first.wait()
        with suppress(TimeoutError):
            async with asyncio.timeout(BATCH_SECONDS):
                await batches.full.wait()
        rows, committed = batches.take()
        assert committed is not None
        try:
            await commit(db, rows)
        except Exception as exc:  # a full disk: every event of the batch stays unacked and comes again
            committed.set_exception(exc)
        else:
            committed.set_result(None)


@cleanup()
async def close_writer() -> None:
    for db in writer_db:
        db.close()


@expose.listener(durable=True)
async def broadcast(attempt__: int = 1, **message: Any) -> None:
    """Returns once the event's batch is committed; raising (a full disk) leaves it unacked."""
    row = (message['id'], message['key'], message.get('uid'), message.get('time'), json.dumps(message))
    await asyncio.shield(batches.add(row))


@blocking()
def query(path: str, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    with closing(connect(path)) as db:
        return db.execute(sql, args).fetchall()


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
