"""The stock store service: every event into ClickHouse; queries over RPC.

Run it with ``band store`` (``band up`` does). Methods: ``query(sql, params)``,
``insert(table, rows)``, ``import_lines(lines, shape)``, ``status()``, ``replay(since)``,
``check(since, ids, wait)``, ``counts(minutes)``, ``replay_failed(key, since)``; see docs/storage.md.
Identity: ``identify``, ``alias``, ``link``, ``merge``, ``split``, ``identity`` (show); see docs/identity.md.
Privacy: ``forget(uid|user_id|person, by)`` and ``person(...)``; see docs/privacy.md.
"""

import asyncio
import os
from typing import Any

from band import current_app, expose, logger, settings, worker
from band.store.config import load
from band.store.metrics import collectors
from band.store.server import Store

DRAIN_S = float(os.environ.get("STORE_DRAIN_TIMEOUT") or 10.0)
store = Store(load(settings), logger, ack_wait_s=float(os.environ.get("STORE_ACK_WAIT") or 30.0))
current_app().collectors.extend(collectors())  # band_store_* on /metrics beside the service's own


@worker()
async def write() -> None:
    """The writer; at stop it finishes the batch in hand (within STORE_DRAIN_TIMEOUT) and closes.

    Stopped before it writes (opening ClickHouse, creating its consumer, NATS away) it
    has no batch in hand: it is cancelled at once."""
    task = asyncio.get_running_loop().create_task(store.run(current_app().connection()))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await store.stop()
        if store.writer is not None:
            await asyncio.wait([task], timeout=DRAIN_S)
        if not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        if task.done() and not task.cancelled() and task.exception() is not None:  # cut short by the stop
            logger.warning("store: the writer ended with an error while stopping", error=repr(task.exception()))
        raise
    finally:
        if task.done():
            await asyncio.to_thread(store.close)


@expose()
async def query(sql: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A read-only query: {"columns": [{"name", "type"}], "rows": [{...}]}."""
    return await store.query(sql, params)


@expose()
async def stream(sql: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A read of any size: {"cursor", "next", "columns"}; ask `next` for each chunk (docs/protocol.md)."""
    return await store.stream(sql, params)


@expose()
async def insert(table: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows into a table of your own (defined in store.yml): {"inserted": n}."""
    return await store.insert(table, rows)


@expose()
async def import_lines(lines: str, shape: str = "auto") -> dict[str, Any]:
    """One batch of `band store import` (JSON lines, packed): {"stored", "skipped", "bad": [[index, reason]]}."""
    return await store.import_lines(lines, shape)


@expose()
async def status() -> dict[str, Any]:
    """Health: state, last error, rows per table, events pending in the stream, replay progress."""
    return await store.status()


@expose()
async def replay(since: str | None = None) -> dict[str, Any]:
    """Re-read the stream (from `since`, a date) into the store; stored events are skipped."""
    return await store.replay(since)


@expose()
async def check(since: str | None = None, ids: bool = False, wait: float = 2.0) -> dict[str, Any]:
    """Reconcile the stream with the store (`band store check`): {"running": true, "read", "total"}
    while it runs (call again to follow it), then {"running": false, "result": {"missing", "duplicated", "pending", ...}}."""
    return await store.check(since, ids, wait)


@expose()
async def replay_failed(key: str | None = None, since: str | None = None) -> dict[str, Any]:
    """Failed events (of `key` or its prefix, since `since`) checked against today's schemas; those
    that pass stored once and removed from failed_events: {"checked", "stored", "already", "failing", "errors"}."""
    return await store.replay_failed(key, since)


@expose()
async def identify(uid: str, user_id: str, traits: dict[str, Any] | None = None) -> dict[str, Any]:
    """Join a browser uid and your user id into one person (docs/identity.md): {"stream_seq", "applied", "person_id"}."""
    return await store.identity_call("identify", uid, user_id, traits)


@expose()
async def alias(previous_id: str, user_id: str) -> dict[str, Any]:
    """Join two identifiers (kind:value; bare digits are a uid, other bare text a user id) into one person."""
    return await store.identity_call("alias", previous_id, user_id)


@expose()
async def link(uid: str, identifier: str) -> dict[str, Any]:
    """Join a further identifier (partner:<partner>:<id>, phone:<digits>) to a uid's person."""
    return await store.identity_call("link", uid, identifier)


@expose()
async def merge(a: str, b: str, by: str = "rpc") -> dict[str, Any]:
    """The operator's: join the persons of two identifiers (the older person's id wins), recorded with `by`."""
    return await store.identity_call("merge", a, b, by)


@expose()
async def split(identifier: str, by: str = "rpc") -> dict[str, Any]:
    """The operator's: take an identifier out of its person into a person of its own, recorded with `by`."""
    return await store.identity_call("split", identifier, by)


@expose()
async def identity(identifier: str) -> dict[str, Any]:
    """The person of any identifier: {person_id, identifiers, uids, traits, merges}."""
    return await store.identity_call("show", identifier)


@expose()
async def forget(uid: str | None = None, user_id: str | None = None, person: str | None = None,
                 by: str = "rpc", wait: float = 20.0) -> dict[str, Any]:
    """Forget one person (exactly one of uid, user_id, person): their rows, stream messages, dead
    letters and Redis segments deleted, a tombstone kept; the report (docs/privacy.md), or
    {"running": true} after `wait` seconds (call again to follow it). The operator's only."""
    return await store.forget(uid, user_id, person, by, wait)


@expose()
async def person(uid: str | None = None, user_id: str | None = None, person: str | None = None) -> dict[str, Any]:
    """One person's identifiers and the SELECT of their rows per table: {"person_id", "identifiers", "selects"}."""
    return await store.person(uid, user_id, person)


@expose()
async def counts(minutes: int = 60) -> dict[str, Any]:
    """The last `minutes`: stored, failed, flagged per minute and key; events in the stream; lag to queryable."""
    return await store.counts(minutes)


__all__ = [
    "DRAIN_S",
    "alias",
    "check",
    "counts",
    "forget",
    "identify",
    "identity",
    "import_lines",
    "insert",
    "link",
    "merge",
    "person",
    "query",
    "replay",
    "replay_failed",
    "split",
    "status",
    "store",
    "stream",
    "write",
]
