"""The running store: opens the database, keeps the schema, runs the writer, answers
``query``/``insert``/``status``/``replay`` for :mod:`band.store.service`.

It drives its own JetStream pull consumer (durable ``store_writer``, shared by every
replica) instead of a ``@listener``, because exactly once needs batch control: fetch
many, insert once, then ack them all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Mapping

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError

from .. import wire
from ..errors import RPCError
from .._core.log import Logger
from .._runtime.stream import ensure_stream
from .bots import counts_sql
from .backend import READONLY_CODE, StoreError, Unavailable, open_backend
from .config import StoreConfig
from .imports import SHAPES, store_objects, unpack
from .metrics import metrics
from .migrate import ensure
from .prepare import Preparer, collect_less, processes
from .pull import Puller
from .rows import RowBuilder
from .writer import Engine, Health, Writer

DURABLE = "store_writer"
REPLAY = "store_replay"
READY_TIMEOUT_S = 30.0
MAX_INSERT_ROWS = 100_000


class Store:
    """One store process: its config, engine, health and writers."""

    def __init__(self, config: StoreConfig, logger: Logger, ack_wait_s: float = 30.0) -> None:
        self.config = config
        self.log = logger
        self.ack_wait_s = ack_wait_s
        self.health = Health()
        self.builder = RowBuilder(config)
        self.preparer = Preparer(self.builder, processes(config.build_processes), logger)
        self.engine: Engine | None = None
        self.writer: Writer | None = None
        self.replaying: Writer | None = None
        self.replay_total = 0
        self._replay_task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._nc: Client | None = None

    # --- lifecycle ---------------------------------------------------------------------
    async def run(self, nc: Client) -> None:
        """Open, migrate, then write until :meth:`stop`; retries opening while ClickHouse is down."""
        self._nc = nc
        delay = 0.5
        while self.engine is None:
            try:
                engine = Engine.of(await asyncio.to_thread(open_backend, self.config.clickhouse_url, self.config.data_dir),
                                   self.config)
                changes = await engine.call(ensure, engine.backend, self.config)
                self.engine = engine
            except StoreError as exc:
                if not isinstance(exc, Unavailable):  # a statement of ours refused, or no engine installed
                    self.health.state, self.health.last_error = "failed", exc.message
                    self.log.error("store: schema or migration failed; fix it and restart", error=exc.message)
                    return
                self.health.state, self.health.last_error = "retrying", exc.message
                self.log.warning("store: ClickHouse not reachable; retrying", error=exc.message, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        for name in changes.created:
            self.log.info("store: table created", table=name)
        for name in changes.added:
            self.log.info("store: column added", column=name)
        for text in changes.mismatched:
            self.log.warning("store: column type differs from config (never retyped; use a migration)", column=text)
        for name in changes.migrations:
            self.log.info("store: migration applied", migration=name)
        self.health.state = "writing"
        metrics().healthy.set(1)
        collect_less()
        await self.preparer.start()
        self._ready.set()
        where = self.config.clickhouse_url and "ClickHouse server" or str(self.config.data_dir)
        self.log.info("store: writing events", into=where, database=self.config.database,
                      batch_rows=self.config.batch_rows, batch_seconds=self.config.batch_seconds)
        psub = await self._consumer(nc, DURABLE, DeliverPolicy.ALL)
        self.writer = self._writer(psub, check_all=False)
        self.writer.checking_all = lambda: self._replay_task is not None and not self._replay_task.done()
        await self.writer.run()

    def _writer(self, psub: Puller, check_all: bool) -> Writer:
        assert self.engine is not None
        return Writer(self.engine, self.builder, psub, batch_rows=self.config.batch_rows,
                      batch_seconds=self.config.batch_seconds, ack_wait_s=self.ack_wait_s, health=self.health,
                      logger=self.log, check_all=check_all, preparer=self.preparer)

    async def _consumer(self, nc: Client, durable: str, policy: DeliverPolicy, since: dt.datetime | None = None) -> Puller:
        js = nc.jetstream()
        await ensure_stream(js)
        config = ConsumerConfig(
            durable_name=durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s,
            deliver_policy=policy, filter_subject=wire.EVENTS_SUBJECTS,
            max_ack_pending=self.config.batch_rows * 4,  # batches being stored or waiting to be, and one filling
            opt_start_time=since,
        )
        try:
            await js.add_consumer(wire.STREAM, config)
        except BadRequestError as exc:  # exists with other settings (an older version): use it as it is
            self.log.warning("store: using the existing consumer as it is", consumer=durable, reason=exc.description)
        return await Puller(nc, wire.STREAM, durable, pending_limit=self.config.batch_rows * 8).start()

    async def stop(self) -> None:
        """Finish the batch in hand (bounded by the caller), leave the rest to JetStream."""
        for writer in (self.replaying, self.writer):
            if writer is not None:
                writer.request_stop()
        if self._replay_task is not None:
            await asyncio.wait([self._replay_task], timeout=5)

    def close(self) -> None:
        self.preparer.close()
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.health.state = "stopped"

    async def ready(self) -> Engine:
        """The engine once open; while it cannot be opened, a 503 at once saying why."""
        if not self._ready.is_set() and self.health.state in ("retrying", "failed"):
            raise RPCError(f"the store is not ready: {self.health.last_error}", 503)
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise RPCError(f"the store is not ready: {self.health.last_error or 'still starting'}", 503) from None
        assert self.engine is not None
        return self.engine

    # --- RPC ------------------------------------------------------------------------------
    async def query(self, sql: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """A read-only query with server-side ``{name:Type}`` parameters: the backend's
        parse guard (:mod:`.readonly`) and its ``readonly=1`` session, both.

        Raises:
            RPCError: 400 "store.query is read-only: ..." for anything but one read;
                400 with ClickHouse's message for a bad query.
        """
        if not isinstance(sql, str) or not sql.strip():
            raise RPCError("sql must be a non-empty string", 400)
        if params is not None and not isinstance(params, Mapping):
            raise RPCError("params must be an object of name: value", 400)
        engine = await self.ready()
        try:
            result: dict[str, Any] = await engine.call(engine.backend.select, sql, dict(params or {}), True, read=True)
        except StoreError as exc:
            if exc.code == READONLY_CODE:
                raise RPCError(f"store.query is read-only: {exc.message}", 400) from None
            raise RPCError(exc.message, 400 if exc.code else 503) from None
        limit = self._nc.max_payload if self._nc is not None else 1 << 20
        if len(result["rows"]) > 100 and len(wire.encode(result)) > limit - 1024:
            raise RPCError(f"the answer ({len(result['rows'])} rows) is larger than one NATS message ({limit} bytes): "
                           "aggregate, or add a LIMIT", 413)
        return result

    async def insert(self, table: str, rows: Any) -> dict[str, Any]:
        """Rows into a service's own table (one defined in store.yml); event tables are the writer's."""
        if not isinstance(table, str) or table not in self.config.tables:
            raise RPCError(f"no table {table!r} in the store's config: define it under tables in store.yml", 400)
        if not self.config.may_insert(table):
            raise RPCError(f"{table!r} holds events written by the store itself; add it to 'insertable' to allow it", 403)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise RPCError("rows must be a list of objects", 400)
        if len(rows) > MAX_INSERT_ROWS:
            raise RPCError(f"at most {MAX_INSERT_ROWS} rows per insert", 400)
        if not rows:
            return {"inserted": 0}
        engine = await self.ready()
        try:
            await engine.insert(table, rows)
        except StoreError as exc:
            raise RPCError(exc.message, 400 if exc.is_data_error or exc.code else 503) from None
        return {"inserted": len(rows)}

    async def import_lines(self, lines: Any, shape: str) -> dict[str, Any]:
        """One batch of ``band store import``: JSON lines of events or exported rows
        (packed by :func:`.imports.pack`), each stored once (see :mod:`.imports`);
        ``{"stored", "skipped", "bad": [[index, reason]]}``."""
        if shape not in SHAPES:
            raise RPCError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}", 400)
        try:
            batch = unpack(lines) if isinstance(lines, str) else None
        except ValueError as exc:
            raise RPCError(str(exc), 400) from None
        if batch is None:
            raise RPCError("lines must be a batch packed by band store import", 400)
        engine = await self.ready()
        try:
            outcome = await store_objects(engine, self.builder, batch, shape=shape)
        except StoreError as exc:
            raise RPCError(f"ClickHouse failed; nothing of this batch is known to be stored: {exc.message}", 503) from None
        return outcome.as_dict()

    async def status(self) -> dict[str, Any]:
        answer = self.health.as_dict()
        answer["database"] = self.config.database
        answer["where"] = "server" if self.config.clickhouse_url else "embedded"
        answer["pending"] = await self._pending(DURABLE)
        answer["bots"] = await self._bots()
        if self.replaying is not None or self._replay_task is not None:
            answer["replay"] = await self.replay_status()
        return answer

    async def _bots(self) -> dict[str, int] | None:
        """Stored events per bot reason (``None`` while the store is not open)."""
        sql = counts_sql(self.config)
        engine = self.engine
        if sql is None or engine is None or not self._ready.is_set():
            return None
        try:
            result = await engine.call(engine.backend.select, sql, {}, True, read=True)
        except StoreError as exc:
            self.log.warning("store: bot counts not read", error=exc.message)
            return None
        return {str(row["reason"]): int(row["n"]) for row in result["rows"]}

    async def _pending(self, durable: str) -> int | None:
        if self._nc is None:
            return None
        try:
            info = await self._nc.jetstream().consumer_info(wire.STREAM, durable)
        except Exception:
            return None
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    # --- replay ------------------------------------------------------------------------------
    async def replay(self, since: str | None) -> dict[str, Any]:
        """Re-read the stream (all of it, or from ``since``) into the store, skipping stored ids."""
        await self.ready()
        if self._replay_task is not None and not self._replay_task.done():
            raise RPCError("a replay is already running: see band store status", 409)
        start = _parse_since(since)
        assert self._nc is not None
        js = self._nc.jetstream()
        try:
            await js.delete_consumer(wire.STREAM, REPLAY)
        except NotFoundError:
            pass
        policy = DeliverPolicy.BY_START_TIME if start else DeliverPolicy.ALL
        psub = await self._consumer(self._nc, REPLAY, policy, start)
        self.replay_total = int((await js.consumer_info(wire.STREAM, REPLAY)).num_pending or 0)
        self.replaying = self._writer(psub, check_all=True)
        self._replay_task = asyncio.get_running_loop().create_task(self._run_replay(self.replaying))
        self.log.info("store: replay started", since=since or "the stream's start", events=self.replay_total)
        return await self.replay_status()

    async def _run_replay(self, writer: Writer) -> None:
        watcher = asyncio.get_running_loop().create_task(writer.run())
        try:
            while not watcher.done():
                await asyncio.sleep(0.5)
                left = await self._pending(REPLAY)
                if left == 0 and writer.processed >= self.replay_total:
                    writer.stop.set()
            await watcher
        finally:
            if self._nc is not None:
                try:
                    await self._nc.jetstream().delete_consumer(wire.STREAM, REPLAY)
                except Exception:
                    pass
            self.log.info("store: replay finished", events=writer.processed)

    async def replay_status(self) -> dict[str, Any]:
        writer = self.replaying
        running = self._replay_task is not None and not self._replay_task.done()
        return {"running": running, "total": self.replay_total, "done": writer.processed if writer else 0}


def _parse_since(since: str | None) -> dt.datetime | None:
    if not since:
        return None
    try:
        value = dt.datetime.fromisoformat(since)
    except ValueError:
        raise RPCError(f"since must be a date or date-time (2024-05-01 or 2024-05-01T12:00), got {since!r}", 400) from None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
