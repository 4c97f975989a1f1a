"""The running store: opens the database, keeps the schema, runs the writer, answers
``query``/``insert``/``status``/``replay`` for :mod:`band.store.service`.

It drives its own JetStream pull consumer (durable ``store_writer``, shared by every
replica) instead of a ``@listener``, because exactly once needs batch control: fetch
many, insert once, then ack them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError

from .. import schemas, wire
from .._core.log import Logger
from .._runtime.cancel import retry
from .._runtime.stream import ensure_stream, events_retention
from ..errors import ConfigError, RPCError
from . import reconcile
from .backend import READONLY_CODE, ServerBackend, StoreError, Unavailable, parse_json
from .bots import counts_sql
from .config import BAD_ROWS, FAILED_EVENTS, StoreConfig
from .counts import minute_counts
from .cursor import FORMAT as CURSOR_FORMAT
from .cursor import Cursor, Cursors
from .engines import open_backend
from .erase import DeleteFailed
from .failed import replay_failed
from .forget import Forgetting
from .http import Interface, serving, url_of
from .identity import Identities
from .identity_catchup import catch_up
from .identity_rpc import Calls
from .imports import SHAPES, store_objects, unpack
from .lag import LagClock
from .metrics import metrics
from .migrate import ensure
from .prepare import Preparer, collect_less, processes
from .pull import Puller
from .results import Reading, Request, Results
from .rows import RowBuilder
from .serverread import ServerAnswer, open_answer
from .tombstones import Tombstones
from .writer import Engine, Health, Writer

DURABLE = "store_writer"
FORGET_WAIT_S = 20.0  # a forget call answers within this (well inside the service's call timeout), running or done
_KEPT = (BAD_ROWS, FAILED_EVENTS)  # the keys of events kept whole instead of as rows: counted as failed
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
        self.lag = LagClock()
        self._check: reconcile.Check | None = None
        self._counting = asyncio.Lock()  # one stream count at a time: its consumer has one name
        self._ready = asyncio.Event()
        self._nc: Client | None = None
        self.http_state = "off"
        self.cursors = Cursors()
        self.instance = uuid.uuid4().hex[:16]
        self.schemas_dir = str(config.raw.get("schemas_dir") or schemas.DEFAULT_DIR)
        schemas.load(self.schemas_dir)  # an invalid schema stops the store at start, naming its file
        events_retention()  # so does a stream retention that is not a duration or a size, naming its variable
        self._replaying_failed = asyncio.Lock()
        self.identities = Identities(config.database, logger) if config.identity_ready() else None
        self.calls = Calls(self.identities, config.database)  # identify, alias, link, merge, split, show
        if self.identities is not None:  # a running replay applies identity changes (see .identity)
            self.identities.replaying = lambda: (self._replay_task is not None and not self._replay_task.done()
                                                 and self.replaying is not None and not self.replaying.stop.is_set())
        self.forgetting: Forgetting | None = None  # once open: band privacy forget / export (forget.py)
        self._forget_run: tuple[tuple[str | None, int], asyncio.Task[dict[str, Any]], float] | None = None

    # --- lifecycle ---------------------------------------------------------------------
    async def run(self, nc: Client) -> None:
        """Open, migrate, then write until :meth:`stop`; retries opening while ClickHouse is down.
        The ClickHouse HTTP interface (embedded chDB only) listens meanwhile."""
        async with self._http():
            await self._run(nc)

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[None]:
        """The ClickHouse HTTP interface, when set and embedded; a port it cannot have is
        logged naming the setting, and the store goes on writing without it."""
        settings = self.config.http
        if not settings.port or self.config.clickhouse_url:
            yield
            return
        interface = Interface(settings, self.results)
        try:
            async with serving(interface):
                self.http_state = url_of(settings)
                self.log.info("store: ClickHouse HTTP interface (read-only)", url=url_of(settings))
                yield
                return
        except ConfigError as exc:
            if self.http_state != "off":
                raise
            self.http_state = f"failed: {exc}"
            self.log.error("store: no ClickHouse HTTP interface", error=str(exc))
        yield

    async def results(self) -> Results:
        """Reads of any size from the embedded engine (:mod:`.results`).

        Raises:
            Unavailable: the store is not ready, or writes to a ClickHouse server.
        """
        try:
            engine = await self.ready()
        except RPCError as exc:
            raise Unavailable(exc.message) from None
        opener = getattr(engine.backend, "results", None)
        if opener is None:
            raise Unavailable("reads of any size need the embedded store (chDB); this store writes to a server")
        found: Results = await asyncio.to_thread(opener)
        return found

    async def _run(self, nc: Client) -> None:
        self._nc = nc
        delay = 0.5
        while self.engine is None:
            try:
                engine = Engine.of(await asyncio.to_thread(open_backend, self.config.clickhouse_url, self.config.data_dir),
                                   self.config)
                changes = await engine.call(ensure, engine.backend, self.config)
                if self.identities is not None:
                    await engine.call(self.identities.load, engine.backend)
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
        for text in changes.ttl:
            self.log.info("store: retention (TTL) changed to what config says", ttl=text)
        for name in changes.migrations:
            self.log.info("store: migration applied", migration=name)
        self.health.state = "writing"
        self.calls.nc, self.calls.engine = nc, self.engine
        self.forgetting = await self._privacy(engine, nc)
        await nc.subscribe(wire.store_next_subject(self.instance), cb=self._on_next)
        asyncio.get_running_loop().create_task(self._sweep())
        metrics().healthy.set(1)
        collect_less()
        await self.preparer.start()
        self._ready.set()
        where = (self.config.clickhouse_url and "ClickHouse server") or str(self.config.data_dir)
        self.log.info("store: writing events", into=where, database=self.config.database,
                      batch_rows=self.config.batch_rows, batch_seconds=self.config.batch_seconds)
        if self.identities is not None:
            await retry(lambda: self._identity_catch_up(nc), 1.0, self._consumer_failed,
                        errors=(nats.errors.Error, OSError, TimeoutError))
        psub = await retry(lambda: self._consumer(nc, DURABLE, DeliverPolicy.ALL), 1.0, self._consumer_failed,
                           errors=(nats.errors.Error, OSError, TimeoutError))
        self.health.state = "writing"
        self.writer = self._writer(psub, check_all=False)
        self.writer.checking_all = lambda: self._replay_task is not None and not self._replay_task.done()
        await self.writer.run()

    async def _privacy(self, engine: Engine, nc: Client) -> Forgetting:
        """The tombstones read (their tables made), and forgetting set up (:mod:`.forget`)."""
        from . import erase, tombstones

        key = await asyncio.to_thread(tombstones.load_key, self.config.raw.get("privacy_key"), self.config.data_dir)
        kept = Tombstones(key, self.log)
        for statement in tombstones.ddl(self.config.database):
            await engine.call(engine.backend.command, statement)
        await engine.call(kept.read, engine.backend, self.config.database)
        secure = str(self.config.raw.get("forget_erase", "false")).strip().lower() in ("true", "1", "yes", "on")
        kept.erase = erase.Eraser(nc, secure)
        asyncio.get_running_loop().create_task(kept.watch(engine.call, engine.backend, self.config.database))
        return Forgetting(engine, kept, nc, str(self.config.raw.get("redis_url") or ""), self.log, secure,
                          self.identities)

    def _writer(self, psub: Puller, check_all: bool) -> Writer:
        assert self.engine is not None
        writer = self._make_writer(psub, check_all)
        writer.tombstones = self.forgetting.tombstones if self.forgetting is not None else None
        return writer

    def _make_writer(self, psub: Puller, check_all: bool) -> Writer:
        assert self.engine is not None
        return Writer(self.engine, self.builder, psub, batch_rows=self.config.batch_rows,
                      batch_seconds=self.config.batch_seconds, ack_wait_s=self.ack_wait_s, health=self.health,
                      logger=self.log, check_all=check_all, preparer=self.preparer,
                      lag=None if check_all else self.lag,  # a replay's old events are not lag
                      identities=self.identities)

    def _consumer_failed(self, exc: Exception) -> None:
        """NATS or JetStream away while the store makes its consumer: it tries again, and says so
        (a store that gave up here would run on and write nothing)."""
        self.health.state, self.health.last_error = "retrying", f"cannot make the consumer {DURABLE}: {exc!r}"
        self.log.warning("store: cannot make its consumer yet; retrying", consumer=DURABLE, error=repr(exc))

    async def _identity_catch_up(self, nc: Client) -> None:
        """Apply, in stream order, the identity changes of events delivered before this
        start and not acked (:mod:`.identity_catchup`): JetStream delivers them again
        only after the ack wait, after newer ones, and the graph is applied in order."""
        assert self.identities is not None and self.engine is not None
        js = nc.jetstream()
        await ensure_stream(js)
        try:
            info = await js.consumer_info(wire.STREAM, DURABLE)
        except NotFoundError:
            return
        floor = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
        delivered = int(info.delivered.stream_seq or 0) if info.delivered else 0
        applied = await catch_up(js, self.engine, self.identities, self.builder, floor, delivered, self.health.rows)
        if applied:
            self.log.info("store: identity changes of unacked events applied in stream order", events=applied,
                          through=delivered)

    async def _consumer(self, nc: Client, durable: str, policy: DeliverPolicy, since: dt.datetime | None = None,
                        start_seq: int | None = None) -> Puller:
        js = nc.jetstream()
        differs = await ensure_stream(js)
        if differs and durable == DURABLE:
            self.log.warning("store: the events stream's retention differs from config; the operator applies it "
                             "with band provision", stream=wire.STREAM, differs=differs)
        config = ConsumerConfig(
            durable_name=durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s,
            deliver_policy=policy, filter_subject=wire.EVENTS_SUBJECTS,
            max_ack_pending=self.config.batch_rows * 4,  # batches being stored or waiting to be, and one filling
            opt_start_time=since, opt_start_seq=start_seq,
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
        except TimeoutError:
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
        await self.ready()
        limit = self._nc.max_payload if self._nc is not None else 1 << 20
        try:
            result = await self._read_all(sql, params or {}, limit)
        except StoreError as exc:
            if exc.code == READONLY_CODE:
                raise RPCError(f"store.query is read-only: {exc.message}", 400) from None
            raise RPCError(exc.message, exc.code if exc.code == TOO_BIG else 400 if exc.code else 503) from None
        if len(result["rows"]) > 100 and len(wire.encode(result)) > limit - 1024:
            raise RPCError(_too_big(len(result["rows"]), limit), TOO_BIG)
        return result

    async def _read_all(self, sql: str, params: Mapping[str, Any], limit: int) -> dict[str, Any]:
        """A small answer, read as :meth:`stream` reads (the default database, a session or
        client of its own); past ``limit`` bytes it stops with code 413, so a large answer
        is never held whole."""
        answer = await self._open(sql, params, "JSON")
        body = bytearray()
        try:
            if answer.format != "JSON":
                raise StoreError("store.query answers rows as JSON: leave FORMAT out of the query", 400)
            async for chunk in answer.chunks():
                body += chunk
                if len(body) > 2 * limit:  # JSON's layout is about twice the size of the wire's
                    raise StoreError(_too_big(0, limit), TOO_BIG)
        finally:
            answer.cancel()
        return parse_json(bytes(body))

    async def stream(self, sql: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Open a cursor on a read of any size (wire: "the store's answers of any size").

        Raises:
            RPCError: as :meth:`query`; 503 while the store or its ClickHouse server is unavailable.
        """
        if not isinstance(sql, str) or not sql.strip():
            raise RPCError("sql must be a non-empty string", 400)
        if params is not None and not isinstance(params, Mapping):
            raise RPCError("params must be an object of name: value", 400)
        try:
            answer = await self._open(sql, params or {}, CURSOR_FORMAT)
            if answer.format != CURSOR_FORMAT:
                answer.cancel()
                raise StoreError("store.stream sends rows as JSON: leave FORMAT out of the query", 400)
            cursor = Cursor(answer)
            await cursor.start()
        except StoreError as exc:
            if exc.code == READONLY_CODE:
                raise RPCError(f"store.query is read-only: {exc.message}", 400) from None
            raise RPCError(exc.message, 503 if isinstance(exc, Unavailable) else 400) from None
        self.cursors.add(cursor)
        return {"cursor": cursor.id, "next": wire.store_next_subject(self.instance), "columns": cursor.columns}

    async def _open(self, sql: str, params: Mapping[str, Any], default_format: str) -> Reading:
        """A read of any size: from chDB's process (:mod:`.results`), or with clickhouse-connect's
        streaming call from a ClickHouse server (:mod:`.serverread`)."""
        if not self.config.clickhouse_url:
            return await (await self.results()).open(Request(sql, {k: _param(v) for k, v in params.items()},
                                                              database=self.config.database,
                                                              default_format=default_format))
        try:
            engine = await self.ready()
        except RPCError as exc:
            raise Unavailable(exc.message) from None
        assert isinstance(engine.backend, ServerBackend)
        request = Request(sql, dict(params), database=self.config.database, default_format=default_format)
        answer: ServerAnswer = await engine.call(open_answer, engine.backend, request, read=True)
        return answer

    async def _on_next(self, msg: Any) -> None:
        asyncio.get_running_loop().create_task(self._next(msg))

    async def _next(self, msg: Any) -> None:
        headers: dict[str, str] = {}
        try:
            request = wire.decode_object(msg.data)
            limit = self._nc.max_payload - 4096 if self._nc is not None else wire.STREAM_CHUNK_BYTES
            data, last = await self.cursors.chunk(request.get("cursor"), min(wire.STREAM_CHUNK_BYTES, limit))
            if last:
                headers[wire.STREAM_DONE_HEADER] = "1"
        except (StoreError, wire.DecodeError) as exc:
            data = b""
            headers = wire.error_headers(getattr(exc, "code", 400) or 400, getattr(exc, "message", str(exc)))
        if msg.reply and self._nc is not None:
            await self._nc.publish(msg.reply, data, headers=headers or None)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(wire.STREAM_IDLE_S / 6)
            await self.cursors.sweep()

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
            stones = self.forgetting.tombstones if self.forgetting is not None else None
            outcome = await store_objects(engine, self.builder, batch, shape=shape,
                                          forgotten=stones.forgotten if stones is not None and stones.hashes else None)
        except StoreError as exc:
            raise RPCError(f"ClickHouse failed; nothing of this batch is known to be stored: {exc.message}", 503) from None
        return outcome.as_dict()

    async def status(self) -> dict[str, Any]:
        answer = self.health.as_dict()
        answer["database"] = self.config.database
        answer["where"] = "server" if self.config.clickhouse_url else "embedded"
        answer["http"] = self.http_state
        answer["pending"] = await self._pending(DURABLE)
        answer["bots"] = await self._bots()
        if self.identities is not None:  # the graph in memory (docs/identity.md)
            graph = self.identities.graph
            answer["identity"] = {"identifiers": len(graph.entries), "persons": len(graph.members),
                                  "applied_seq": graph.applied}
        if self.forgetting is not None:  # events of forgotten people dropped since start (band privacy forget)
            answer["forgotten_dropped"] = self.forgetting.tombstones.dropped
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
        except Exception:  # noqa: BLE001 - NATS away or no consumer: the backlog is unknown
            return None
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    # --- identity (docs/identity.md) ------------------------------------------------------
    async def identity_call(self, method: str, *args: Any) -> dict[str, Any]:
        """``identify``, ``alias``, ``link``, ``merge``, ``split`` or ``show`` (:mod:`.identity_rpc`)."""
        await self.ready()
        answer: dict[str, Any] = await getattr(self.calls, method)(*args)
        return answer

    # --- reconciliation ----------------------------------------------------------------------
    async def check(self, since: str | None, ids: bool, wait: float) -> dict[str, Any]:
        """Start the check of the window from ``since`` (or join the one running with the
        same arguments) and wait up to ``wait`` s: its result, or its progress.

        Raises:
            RPCError: 409 while a check with other arguments runs; 400 for a bad ``since``.
        """
        start = _parse_since(since)
        await self.ready()
        running = self._check
        if running is not None and running.result is None and running.task is not None and not running.task.done():
            if running.key != (since, bool(ids)):
                raise RPCError("another band store check is running: wait for it, then try again", 409)
        else:
            running = self._check = reconcile.Check(since, bool(ids))
            running.task = asyncio.get_running_loop().create_task(self._run_check(running, start))
        assert running.task is not None
        await asyncio.wait([running.task], timeout=max(0.0, min(float(wait), 10.0)))
        if running.task.done() and isinstance(running.task.exception(), reconcile.Busy):
            self._check = None
            raise RPCError("another store replica is running band store check (or one stopped less than "
                           f"{reconcile.INACTIVE_S:.0f} s ago): try again shortly", 409)
        state = running.state()
        if not state["running"] and self._check is running:
            self._check = None  # answered: the next call starts afresh
        return state

    async def _run_check(self, check: reconcile.Check, since: dt.datetime | None) -> None:
        assert self._nc is not None and self.engine is not None
        engine, window = self.engine, check.window
        try:
            floor = reconcile.ack_floor(await self._nc.jetstream().consumer_info(wire.STREAM, DURABLE))
        except NotFoundError:  # the writer has not made its consumer yet: nothing is done, all may come
            floor = 0
        await reconcile.read_window(self._nc, since, window)
        check.read_s = time.monotonic() - check.started
        check.stage = "looking the events up in the store"
        tables = self.config.routed_tables()
        lo, hi = (min(window.seqs), max(window.seqs)) if window.seqs else (1, 0)
        stored, doubles = await engine.call(reconcile.stored_in, engine.backend, self.config.database, tables, lo, hi, read=True)
        by_id = await engine.call(reconcile.ids_stored, engine.backend, self.config.database, tables,
                                  reconcile.unmatched_ids(window, stored), read=True)
        missing, pending = reconcile.verdict(window, stored, by_id, floor)
        check.result = reconcile.report(window, missing, doubles, pending, floor, check.key[1],
                                        time.monotonic() - check.started)
        self.log.info("store: check done", events=len(window.seqs), missing=len(missing), duplicated=len(doubles),
                      pending=len(pending), stream_read_s=round(check.read_s, 2), seconds=check.result["seconds"])

    async def counts(self, minutes: int) -> dict[str, Any]:
        """The last ``minutes``: events stored, failed (``bad_rows``) and flagged, per minute
        and key; events the stream received; lag to queryable (p50 / p99); and the events
        the store has still to write (``pending``, of any age)."""
        if not isinstance(minutes, int) or not 1 <= minutes <= 24 * 60:
            raise RPCError("minutes must be a whole number from 1 to 1440", 400)
        engine = await self.ready()
        assert self._nc is not None
        since = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=minutes - 1)
        rows = await engine.call(minute_counts, engine.backend, self.config, minutes, read=True)
        try:
            async with self._counting:
                stream: int | None = await reconcile.in_stream(self._nc, since)
        except Exception:  # noqa: BLE001 - JetStream away: say unknown, keep the rest
            stream = None
        return {"minutes": minutes, "per_minute": rows, "in_stream": stream,
                "stored": sum(r["stored"] for r in rows if r["key"] not in _KEPT),
                "failed": sum(r["stored"] for r in rows if r["key"] in _KEPT),
                "flagged": sum(r["flagged"] for r in rows),
                "pending": await self._pending(DURABLE),  # in the stream, not yet stored (any age)
                "lag": self.lag.quantiles(min(minutes, 60))}

    # --- replay ------------------------------------------------------------------------------
    async def replay_failed(self, key: str | None, since: str | None) -> dict[str, Any]:
        """Failed events (of ``key`` or its prefix, since ``since``) checked against the
        schemas as they are now; those that pass stored once and removed from failed_events."""
        if FAILED_EVENTS not in self.config.tables:
            raise RPCError(f"this store has no {FAILED_EVENTS!r} table (the stock config defines it)", 400)
        if key is not None and not isinstance(key, str):
            raise RPCError("key must be a routing key or prefix like in.gen.track.purchase", 400)
        start = _parse_since(since)
        try:
            today = schemas.load(self.schemas_dir)
        except ConfigError as exc:
            raise RPCError(f"{exc}; fix it and run replay-failed again", 400) from None
        engine = await self.ready()
        if self._replaying_failed.locked():
            raise RPCError("replay-failed is already running", 409)
        async with self._replaying_failed:
            outcome = await replay_failed(engine, self.builder, today, key or None, start)
        self.log.info("store: failed events replayed", **outcome.as_dict())
        return {**outcome.as_dict(), "schemas": len(today), "schemas_dir": self.schemas_dir}

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
                except Exception:  # noqa: BLE001 - best-effort cleanup: the consumer may be gone with the connection
                    pass
            self.log.info("store: replay finished", events=writer.processed)

    # --- privacy --------------------------------------------------------------------------
    async def forget(self, uid: Any, user_id: Any, person: Any, by: Any, wait: Any = FORGET_WAIT_S) -> dict[str, Any]:
        """Forget one person (``band privacy forget``): the report of :mod:`.forget`, or
        ``{"running": true, "seconds": ...}`` when it takes longer than ``wait`` seconds (it
        goes on; the same call again follows it, as ``band store check`` does).

        Raises:
            RPCError: 400 unless exactly one of uid, user_id, person is given and valid;
                409 while the forget of another person runs in this store; 503 when
                ClickHouse or JetStream failed on the way (run it again: it is idempotent).
        """
        forgetting, given, person_id = await self._person_args(uid, user_id, person)
        key = (given, person_id)
        running = self._forget_run
        if running is not None and running[0] != key and not running[1].done():
            raise RPCError("the forget of another person is running: wait for it, then try again", 409)
        if running is None or running[0] != key:
            task = asyncio.get_running_loop().create_task(forgetting.forget(given, person_id, str(by or "rpc")[:200]))
            running = self._forget_run = (key, task, time.monotonic())
        await asyncio.wait([running[1]], timeout=max(0.0, min(float(wait or 0), FORGET_WAIT_S)))
        if not running[1].done():
            return {"running": True, "seconds": round(time.monotonic() - running[2], 1)}
        self._forget_run = None
        try:
            return running[1].result()
        except StoreError as exc:
            raise RPCError(f"ClickHouse failed while forgetting; run it again (it is idempotent): {exc.message}",
                           503) from None
        except (DeleteFailed, nats.errors.Error) as exc:
            raise RPCError(f"JetStream failed while forgetting; run it again (it is idempotent): {exc!r}", 503) from None

    async def person(self, uid: Any, user_id: Any, person: Any) -> dict[str, Any]:
        """A person's identifiers and the ``SELECT`` of their rows per table (``band privacy export``)."""
        forgetting, given, person_id = await self._person_args(uid, user_id, person)
        try:
            return await forgetting.selects(given, person_id)
        except StoreError as exc:
            raise RPCError(exc.message, 503) from None

    async def _person_args(self, uid: Any, user_id: Any, person: Any) -> tuple[Forgetting, str | None, int]:
        from .person import parse

        try:
            given, person_id = parse(uid, user_id, person)
        except ValueError as exc:
            raise RPCError(str(exc), 400) from None
        await self.ready()
        assert self.forgetting is not None
        return self.forgetting, given, person_id

    async def replay_status(self) -> dict[str, Any]:
        writer = self.replaying
        running = self._replay_task is not None and not self._replay_task.done()
        return {"running": running, "total": self.replay_total, "done": writer.processed if writer else 0}


TOO_BIG = 413  # an answer larger than one NATS message: store.query reads it with store.stream


def _too_big(rows: int, limit: int) -> str:
    counted = f" ({rows} rows)" if rows else ""
    return (f"the answer{counted} is larger than one NATS message ({limit} bytes): read it with store.stream, "
            "aggregate, or add a LIMIT")


def _param(value: Any) -> Any:
    """A parameter as chDB takes it: text, numbers, and lists/objects as ClickHouse literals (JSON)."""
    return value if isinstance(value, (str, int, float)) else wire.encode(value).decode()


def _parse_since(since: str | None) -> dt.datetime | None:
    if not since:
        return None
    try:
        value = dt.datetime.fromisoformat(since)
    except ValueError:
        raise RPCError(f"since must be a date or date-time (2024-05-01 or 2024-05-01T12:00), got {since!r}", 400) from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


__all__ = [
    "DURABLE",
    "FORGET_WAIT_S",
    "MAX_INSERT_ROWS",
    "READY_TIMEOUT_S",
    "REPLAY",
    "TOO_BIG",
    "Store",
]
