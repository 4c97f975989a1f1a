"""``band store import``: events one already has into the store, each once.

Where the events go depends on whether the store runs. A running store holds its chDB
data directory for itself (chDB lets one process open it), so the import goes through
it: batches over NATS to its ``import_lines`` method, which stores them beside the
live writer under the same lock. With no store answering, the import opens the data
directory itself (or ``CLICKHOUSE_URL``'s server), as ``band demo --store`` does, and
runs the same code (:mod:`.imports`) in this process. Either way each event is looked
up by id before it is written, so running an import twice, or after it was cut short,
stores nothing twice.

A batch is up to 5,000 lines, compressed to fit one NATS message (JSON lines shrink
5-40x; a batch that does not fit is halved); two are in flight so reading the next one
overlaps storing this one, which bounds memory whatever the input's size. A bad line
is reported with its number and the reason, and the rest goes in.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, TextIO

from .. import wire
from .._runtime.state import nats_url
from ..errors import ConfigError, RPCError
from .backend import StoreError
from .imports import AUTO, SHAPES, pack, store_objects
from .importsource import Line, SourceError, clickhouse_rows, json_lines

BATCH_EVENTS = 5000
BATCH_BYTES = 32 << 20  # of lines, before compression
INFLIGHT = 2  # batches sent and not yet answered
CALL_TIMEOUT_S = 120.0
RETRIES = 5
SHOW_BAD = 100  # bad lines printed one by one; past that, counted
PING_TIMEOUT_S = 1.0


def add_parser(sub: Any) -> None:
    """``band store import`` under ``band store``'s subcommands."""
    p = sub.add_parser("import", help="load events or exported rows into the store; safe to run twice",
                       description="Load events one already has into the store, each once: JSON lines of events "
                       "(band demo --jsonl) or of store rows (band sql --format jsonl \"SELECT * FROM stats.events\"), "
                       "or a table of a ClickHouse server (a Rockstat chwriter table). Goes through the running "
                       "store, else writes its data directory directly. See docs/storage.md.")
    p.add_argument("file", nargs="?", metavar="FILE|-", help="JSON lines, - for stdin")
    p.add_argument("--from-clickhouse", metavar="URL", help="read a table of this ClickHouse server instead "
                   "(http://user:password@host:8123; chdb://DIR for a chDB directory)")
    p.add_argument("--table", default="stats.events", help="the table to read with --from-clickhouse (default stats.events)")
    p.add_argument("--shape", choices=SHAPES, default=AUTO,
                   help="event (as the edge publishes it), row (as the store exports it) or auto (each line by its fields)")
    p.add_argument("--direct", nargs="?", const="", metavar="DIR",
                   help="write the data directory (default: the store's data_dir) without asking a running store")
    p.add_argument("--nats", help="NATS URL(s) (default: $NATS_URL, then ./.band/nats.url)")


class Target(Protocol):
    """Where batches are stored: :class:`ThroughStore` or :class:`Direct`."""

    what: str

    async def store(self, lines: list[bytes], shape: str) -> dict[str, Any]: ...
    async def close(self) -> None: ...


class ThroughStore:
    """The running store, over RPC."""

    def __init__(self, nc: Any, url: str) -> None:
        from .._core.rpc import RPC

        self.nc = nc
        self.rpc = RPC(lambda: nc)
        self.what = f"through the running store (NATS {url})"
        self.max_bytes = int(nc.max_payload) - 4096  # the call's envelope

    async def store(self, lines: list[bytes], shape: str) -> dict[str, Any]:
        """One batch, halved until each part fits one NATS message."""
        packed = pack(lines)
        if len(packed) <= self.max_bytes:
            return await self._call(packed, shape)
        if len(lines) == 1:
            return {"stored": 0, "skipped": 0,
                    "bad": [[0, f"{len(lines[0]):,} bytes, too large to send in one NATS message ({self.max_bytes:,})"]]}
        half = len(lines) // 2
        first, second = await self.store(lines[:half], shape), await self.store(lines[half:], shape)
        return {"stored": first["stored"] + second["stored"], "skipped": first["skipped"] + second["skipped"],
                "bad": first["bad"] + [[int(i) + half, reason] for i, reason in second["bad"]]}

    async def _call(self, packed: str, shape: str) -> dict[str, Any]:
        """Retried while the store cannot say what became of the batch (its ids make that safe)."""
        delay = 1.0
        for attempt in range(RETRIES + 1):
            try:
                answer: dict[str, Any] = await self.rpc.request("store", "import_lines", timeout__=CALL_TIMEOUT_S,
                                                                lines=packed, shape=shape)
                return answer
            except RPCError as exc:
                if exc.code not in (503, 504) or attempt == RETRIES:
                    raise
                print(f"\nband store import: {exc.message}; retrying in {delay:.0f} s", file=sys.stderr)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        await self.nc.close()


class Direct:
    """The store's data directory (or its ClickHouse server) opened here; no store may be running."""

    def __init__(self, data_dir: str | None) -> None:
        from .config import load
        from .engines import open_backend
        from .rows import RowBuilder
        from .writer import Engine

        self.config = load()
        where = Path(data_dir) if data_dir else self.config.data_dir
        self.what = "into ClickHouse at CLICKHOUSE_URL" if self.config.clickhouse_url else f"into {where} directly"
        self.engine = Engine.of(open_backend(self.config.clickhouse_url, where), self.config)
        self.builder = RowBuilder(self.config)

    async def open(self) -> Direct:
        from .migrate import ensure

        await self.engine.call(ensure, self.engine.backend, self.config)
        return self

    async def store(self, lines: list[bytes], shape: str) -> dict[str, Any]:
        return (await store_objects(self.engine, self.builder, lines, shape=shape)).as_dict()

    async def close(self) -> None:
        await asyncio.to_thread(self.engine.close)


async def _target(args: argparse.Namespace) -> Target:
    """Through the store when one answers on NATS, else direct."""
    if args.direct is None:
        url = nats_url(args.nats)
        nc = await _running_store(url)
        if nc is not None:
            return ThroughStore(nc, url)
    return await Direct(args.direct).open()


async def _running_store(url: str) -> Any:
    """A connection to ``url`` when a store answers there, else None."""
    import nats.errors

    from .._runtime.connect import connect

    async def quiet(exc: Exception) -> None:
        pass

    try:
        nc = await connect(url, name="band-import", max_reconnect_attempts=0, allow_reconnect=False, error_cb=quiet)
    except (nats.errors.NoServersError, OSError):
        return None
    try:
        await nc.request(f"{wire.SRV_PREFIX}.PING.store", b"", timeout=PING_TIMEOUT_S)
        return nc
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        await nc.close()
        return None


class Progress:
    """Events read and events/s on stderr: redrawn ten times a second on a terminal,
    a line every two seconds otherwise."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.tty = out.isatty()
        self.started = self.shown = time.monotonic()

    def __call__(self, read: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.shown < (0.1 if self.tty else 2.0):
            return
        self.shown = now
        rate = read / max(now - self.started, 1e-6)
        end = "\n" if final or not self.tty else ""
        print(f"\r  {read:,} events read, {rate:,.0f} events/s", end=end, file=self.out, flush=True)


class Tally:
    """The summary, and bad lines reported as they come back."""

    def __init__(self) -> None:
        self.read = self.stored = self.skipped = self.bad = 0

    def report_bad(self, number: int, reason: str) -> None:
        self.bad += 1
        if self.bad <= SHOW_BAD:
            print(f"\rline {number}: {reason}", file=sys.stderr)
        elif self.bad == SHOW_BAD + 1:
            print("\r(more bad lines are counted, not shown)", file=sys.stderr)

    def take(self, numbers: list[int], answer: dict[str, Any]) -> None:
        self.stored += int(answer["stored"])
        self.skipped += int(answer["skipped"])
        for index, reason in answer["bad"]:
            self.report_bad(numbers[int(index)], str(reason))

    def summary(self) -> str:
        return (f"read {self.read:,}, stored {self.stored:,}, skipped {self.skipped:,} (already stored), "
                f"bad {self.bad:,}")


def _batches(lines: Iterator[Line], tally: Tally) -> Iterator[tuple[list[int], list[bytes]]]:
    """Lines in batches of at most :data:`BATCH_EVENTS` lines and :data:`BATCH_BYTES`."""
    numbers: list[int] = []
    raws: list[bytes] = []
    size = 0
    for line in lines:
        tally.read += 1
        if raws and size + len(line.raw) > BATCH_BYTES:
            yield numbers, raws
            numbers, raws, size = [], [], 0
        numbers.append(line.number)
        raws.append(line.raw)
        size += len(line.raw)
        if len(raws) >= BATCH_EVENTS:
            yield numbers, raws
            numbers, raws, size = [], [], 0
    if raws:
        yield numbers, raws


async def _import(target: Target, lines: Iterator[Line], shape: str, tally: Tally, progress: Progress) -> None:
    pending: set[asyncio.Task[None]] = set()

    async def one(numbers: list[int], raws: list[bytes]) -> None:
        tally.take(numbers, await target.store(raws, shape))

    try:
        for numbers, raws in _batches(lines, tally):
            while len(pending) >= INFLIGHT:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            pending.add(asyncio.ensure_future(one(numbers, raws)))
            progress(tally.read)
            await asyncio.sleep(0)  # let the request go out while the next batch is read
        await asyncio.gather(*pending)
        pending = set()
    finally:
        for task in pending:
            task.cancel()


def _source(args: argparse.Namespace) -> tuple[Iterator[Line], Any]:
    if args.from_clickhouse:
        return clickhouse_rows(args.from_clickhouse, args.table), None
    if args.file == "-":
        return json_lines(sys.stdin.buffer, "stdin"), None
    try:
        handle = open(args.file, "rb")
    except OSError as exc:
        raise SourceError(f"cannot read {args.file}: {exc.strerror}") from None
    return json_lines(handle, args.file), handle


async def _run(args: argparse.Namespace) -> int:
    if bool(args.file) == bool(args.from_clickhouse):
        print("band store import: give a FILE (- for stdin) or --from-clickhouse URL, not both", file=sys.stderr)
        return 2
    tally = Tally()
    handle = None
    try:
        lines, handle = _source(args)
        lines = _peeked(lines)  # not JSON lines, an unreachable server: said before anything is opened
        target = await _target(args)
    except SourceError as exc:
        print(f"band store import: {exc}", file=sys.stderr)
        return 2 if not args.from_clickhouse else 1
    except StoreError as exc:
        print(f"band store import: {exc.message}\n(is a store running on another NATS? import through it with --nats, "
              "or stop it first)", file=sys.stderr)
        return 1
    except (OSError, ConfigError) as exc:
        print(f"band store import: cannot open the store: {exc}", file=sys.stderr)
        return 1
    print(f"importing {target.what}", file=sys.stderr)
    progress, code = Progress(), 0
    try:
        await _import(target, lines, args.shape, tally, progress)
    except SourceError as exc:
        print(f"\nband store import: {exc}", file=sys.stderr)
        code = 1
    except (RPCError, StoreError) as exc:
        print(f"\nband store import: stopped: {exc.message}; what was stored stays, and running the same import "
              "again skips it", file=sys.stderr)
        code = 1
    finally:
        await target.close()
        if handle is not None:
            handle.close()
    progress(tally.read, final=True)
    print(tally.summary())
    return code or (1 if tally.bad else 0)


def _peeked(lines: Iterator[Line]) -> Iterator[Line]:
    """``lines`` with its first item read now, so a source that fails at once fails here."""
    try:
        first = next(lines)
    except StopIteration:
        return iter(())

    def again() -> Iterator[Line]:
        yield first
        yield from lines

    return again()


def main(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        print("\nband store import: interrupted; running the same import again skips what was stored", file=sys.stderr)
        return 130


__all__ = ["Direct", "Progress", "Tally", "ThroughStore", "add_parser", "main"]
