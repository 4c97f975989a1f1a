"""``band sql`` and ``band store``: the store from the shell.

``band sql "SELECT ..." [name=value ...]`` prints the answer as an aligned table (or
``--format json|csv|tsv``); ``band store`` runs the store service; ``band store
replay [--since DATE]`` re-reads the stream into it with a running count;
``band store status`` prints its health; ``band store check [--since T] [--ids]``
reconciles the stream with the store (:mod:`.reconcile`); ``band store import`` loads
events one already has (:mod:`.importer`). All of them talk to the running store over
NATS, found as every ``band`` command finds it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import Sequence
from typing import Any

from .._runtime.state import nats_url
from ..errors import RPCError


def _sql_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="band sql", description="Run a read-only query on the store and print the answer. "
        "Parameters: write {name:Type} in the query and pass name=value after it.")
    parser.add_argument("query", help="SQL, e.g. \"SELECT date, count() FROM stats.events GROUP BY date\"")
    parser.add_argument("params", nargs="*", metavar="name=value", help="values for {name:Type} placeholders")
    parser.add_argument("--format", choices=("table", "json", "jsonl", "csv", "tsv"), default="table",
                        help="table (default), json (a list of objects), jsonl (JSON lines), csv or tsv (with a header "
                        "line); "
                        "any size streams, with the rows so far on stderr")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--nats", help="NATS URL(s) (default: $NATS_URL, then ./.band/nats.url)")
    return parser


def _store_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="band store", description="The store: every event in ClickHouse "
                                     "(embedded chDB in ./.band/store, or $CLICKHOUSE_URL). See docs/storage.md.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    run = sub.add_parser("run", help="run the store service (the default)")
    run.add_argument("--nats", help="NATS URL(s)")
    replay = sub.add_parser("replay", help="re-read the stream into the store; safe to run twice")
    replay.add_argument("--since", help="start at this date or date-time (UTC), e.g. 2024-05-01")
    replay.add_argument("--nats", help="NATS URL(s)")
    status = sub.add_parser("status", help="the store's health as JSON")
    status.add_argument("--nats", help="NATS URL(s)")
    check = sub.add_parser("check", help="is every event of the stream in the store exactly once? "
                           "exit 0: yes; 1: some missing or duplicated; 2: the check could not run")
    check.add_argument("--since", help="check the events from this date or date-time (UTC); default: the whole stream")
    check.add_argument("--ids", action="store_true", help="list the ids of the missing, duplicated and pending events")
    check.add_argument("--nats", help="NATS URL(s)")
    failed = sub.add_parser("replay-failed", help="check failed_events against today's schemas; store those that pass, "
                            "once, and remove them from failed_events")
    failed.add_argument("--key", help="only this routing key or prefix, e.g. in.gen.track.purchase")
    failed.add_argument("--since", help="only events from this date or date-time (UTC), e.g. 2024-05-01")
    failed.add_argument("--nats", help="NATS URL(s)")
    from .importer import add_parser

    add_parser(sub)
    return parser


def main(argv: Sequence[str]) -> int:
    """``argv`` starts with ``sql`` or ``store``."""
    command, rest = argv[0], list(argv[1:])
    if command == "sql":
        args = _sql_parser().parse_args(rest)
        return _run(_sql(args))
    args = _store_parser().parse_args(rest or ["run"])
    if args.action in (None, "run"):
        from .._runtime.runner import run
        from .config import SERVICE_DIR

        return run(SERVICE_DIR, nats_url(args.nats), None)
    if args.action == "import":
        from . import importer

        return importer.main(args)
    if args.action == "check":
        return _run(_check(args))
    if args.action == "replay-failed":
        return _run(_replay_failed(args))
    return _run(_replay(args) if args.action == "replay" else _status(args))


def _run(work: Any) -> int:
    try:
        code: int = asyncio.run(work)
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0


async def _call(url: str, method: str, timeout: float, **params: Any) -> Any:
    import nats.errors

    from .._core.rpc import RPC
    from .._runtime.connect import connect

    try:
        nc = await connect(url, name="band-cli", max_reconnect_attempts=0, allow_reconnect=False)
    except (nats.errors.NoServersError, OSError) as exc:
        raise RPCError(f"no NATS at {url} ({exc}): start the dev stack with 'band up' or set NATS_URL", 503) from None
    try:
        return await RPC(lambda: nc).request("store", method, timeout__=timeout, **params)
    finally:
        await nc.close()


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise RPCError(f"{pair!r} is not name=value", 2)
        out[name] = value
    return out


async def _sql(args: argparse.Namespace) -> int:
    """The answer streamed from the store (any size, constant memory), rows so far on stderr."""
    import nats.errors

    from .. import store
    from .._core.app import App, reset_current, set_current
    from .._runtime.connect import connect

    url = nats_url(args.nats)
    try:
        try:
            nc = await connect(url, name="band-cli", max_reconnect_attempts=0, allow_reconnect=False)
        except (nats.errors.NoServersError, OSError) as exc:
            raise RPCError(f"no NATS at {url} ({exc}): start the dev stack with 'band up' or set NATS_URL", 503) from None
        app = App("band-cli")
        app.nc = nc
        token = set_current(app)
        try:
            columns, rows = await store.stream_result(args.query, timeout__=args.timeout, **_params(args.params))
            if args.format == "table":
                print_result({"columns": columns, "rows": [row async for row in _counted(rows)]}, "table")
            else:
                await _write_rows(columns, _counted(rows), args.format)
        finally:
            reset_current(token)
            await nc.close()
    except RPCError as exc:
        hint = " (is the store running? 'band up' starts it, or 'band store')" if exc.code == 503 else ""
        print(f"band sql: {exc.message}{hint}", file=sys.stderr)
        return 2 if exc.code == 2 else 1
    return 0


PROGRESS_AFTER_S = 1.0  # a quick answer prints no progress


async def _counted(rows: Any) -> Any:
    """``rows`` as they come, with "N rows, R rows/s" on stderr once it takes a while."""
    import time

    started = shown = time.monotonic()
    n = 0
    async for row in rows:
        n += 1
        yield row
        now = time.monotonic()
        if now - shown >= 0.5 and now - started >= PROGRESS_AFTER_S:
            shown = now
            sys.stderr.write(f"\r{n:,} rows, {n / (now - started):,.0f} rows/s")
            sys.stderr.flush()
    if shown != started:
        elapsed = time.monotonic() - started
        sys.stderr.write(f"\r{n:,} rows in {elapsed:.1f} s, {n / elapsed:,.0f} rows/s\n")


async def _write_rows(columns: list[dict[str, str]], rows: Any, fmt: str) -> None:
    """Rows on stdout as they arrive: csv/tsv with a header line, json as JSON lines."""
    names = [c["name"] for c in columns]
    out = sys.stdout
    if fmt == "jsonl":
        async for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "json":  # one JSON array, written as the rows come: an object a line
        out.write("[")
        first = True
        async for row in rows:
            out.write(("\n" if first else ",\n") + json.dumps(row, ensure_ascii=False))
            first = False
        out.write("\n]\n")
    else:
        writer = csv.writer(out, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        writer.writerow(names)
        async for row in rows:
            writer.writerow([_cell(row.get(n)) for n in names])
    out.flush()


def print_result(answer: dict[str, Any], fmt: str = "table") -> None:
    """The answer of ``store.query`` on stdout in ``fmt``."""
    names = [c["name"] for c in answer["columns"]]
    rows = answer["rows"]
    out = sys.stdout
    if fmt == "json":
        json.dump(rows, out, ensure_ascii=False, indent=2)
        out.write("\n")
    elif fmt in ("csv", "tsv"):
        writer = csv.writer(out, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow([_cell(row.get(n)) for n in names])
    else:
        cells = [[_cell(row.get(n)) for n in names] for row in rows]
        numeric = [_is_number(c["type"]) for c in answer["columns"]]
        widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]

        def line(values: list[str]) -> str:
            return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

        out.write(line(names) + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        for r in cells:
            out.write(line(r) + "\n")
        out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
    out.flush()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _is_number(type_: str) -> bool:
    bare = type_.replace("Nullable(", "").replace("LowCardinality(", "")
    return bare.startswith(("UInt", "Int", "Float", "Decimal"))


async def _status(args: argparse.Namespace) -> int:
    try:
        answer = await _call(nats_url(args.nats), "status", 5.0)
    except RPCError as exc:
        print(f"band store: {exc.message}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0 if answer.get("ok") else 1


async def _replay(args: argparse.Namespace) -> int:
    url = nats_url(args.nats)
    try:
        started = await _call(url, "replay", 30.0, since=args.since)
        total = int(started["total"])
        print(f"replaying {total:,} events from the stream into the store (stored ones are skipped)", flush=True)
        state = started
        while state["running"]:
            await asyncio.sleep(0.5)
            state = (await _call(url, "status", 5.0)).get("replay") or {"running": False, "done": total}
            sys.stderr.write(f"\r  {int(state['done']):,} / {total:,}")
            sys.stderr.flush()
        sys.stderr.write("\n")
    except RPCError as exc:
        print(f"band store replay: {exc.message}", file=sys.stderr)
        return 1
    print(f"done: {int(state['done']):,} events read; rows already stored were skipped")
    return 0


async def _replay_failed(args: argparse.Namespace) -> int:
    """Ask the store to replay failed events; the summary on stdout. Exit 0 when none is left failing."""
    try:
        done = await _call(nats_url(args.nats), "replay_failed", 600.0, key=args.key, since=args.since)
    except RPCError as exc:
        hint = " (is the store running? 'band up' starts it, or 'band store')" if exc.code == 503 else ""
        print(f"band store replay-failed: {exc.message}{hint}", file=sys.stderr)
        return 2
    print(f"{done['checked']:,} failed events checked against {done['schemas']} schemas in {done['schemas_dir']}: "
          f"{done['stored']:,} stored, {done['already']:,} already stored, {done['bad_rows']:,} to bad_rows, "
          f"{done['failing']:,} still failing (left in failed_events)")
    for error, count in done["errors"].items():
        print(f"  {count:>8,}  {error}")
    if done["failing"]:
        print("fix the sender or the schema (band schemas lists them), then run band store replay-failed again")
    return 1 if done["failing"] else 0


async def _check(args: argparse.Namespace) -> int:
    """Start the check in the store and follow it; counts on stdout, progress on stderr."""
    url = nats_url(args.nats)
    shown = False
    try:
        while True:
            state = await _call(url, "check", 20.0, since=args.since, ids=args.ids, wait=2.0)
            if not state.get("running"):
                break
            if int(state.get("total") or 0) > 0:
                sys.stderr.write(f"\r  {state.get('stage')}: {int(state.get('read') or 0):,} / {int(state['total']):,} events")
                sys.stderr.flush()
                shown = True
    except RPCError as exc:
        hint = " (is the store running? 'band up' starts it, or 'band store')" if exc.code == 503 else ""
        print(f"band store check: {exc.message}{hint}", file=sys.stderr)
        return 2
    finally:
        if shown:
            sys.stderr.write("\n")
    if "error" in state:
        print(f"band store check: the check failed in the store: {state['error']}", file=sys.stderr)
        return 2
    result = state["result"]
    for kind in ("missing", "duplicated", "pending"):
        for entry in result.get(f"{kind}_ids") or []:
            where = f"stream sequence {entry['seq']}" if kind != "duplicated" else \
                f"{entry['rows']} rows, stream sequences {', '.join(map(str, entry['seqs']))}"
            print(f"{kind} id {entry['id'] or '(none)'} ({where})")
    span = f" (stream sequences {result['first_seq']}-{result['last_seq']})" if result["events"] else ""
    print(f"{result['events']:,} events checked{span} in {result['seconds']:.1f} s: "
          f"missing {result['missing']}, duplicated {result['duplicated']}, pending {result['pending']}")
    if result["pending"]:
        print(f"pending: above what the store has acked (sequence {result['ack_floor']}); "
              "they may still arrive, run the check again later")
    if not result["ok"]:
        print("events are missing or stored twice: see 'Proving nothing was lost' in docs/storage.md "
              "(band store check --ids lists them; band store replay writes missing ones again)")
    return 0 if result["ok"] else 1


__all__ = [
    "PROGRESS_AFTER_S",
    "main",
    "print_result",
]
