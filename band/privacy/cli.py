"""``band privacy forget`` and ``band privacy export``: a person's data deleted, or written
out as JSON lines, through the running store (found as every ``band`` command finds NATS)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Sequence
from typing import Any

from .._runtime.state import nats_url
from ..errors import RPCError

WAIT_S = 15.0  # each forget call answers within this, running or done
CALL_TIMEOUT_S = 30.0


def _who(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--uid", help="a browser uid (the events' uid column)")
    group.add_argument("--user-id", dest="user_id", help="a site's own user id")
    group.add_argument("--person", help="a person id (stats.events_people.person_id)")
    parser.add_argument("--nats", help="NATS URL(s) (default: $NATS_URL, then ./.band/nats.url)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="band privacy", description="A person's data: forget it, or export it. "
                                     "See docs/privacy.md.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    forget = sub.add_parser("forget", help="delete every row, stream message, dead letter and Redis segment of a "
                            "person (every identifier the identity graph joins), and drop their events from now on")
    _who(forget)
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    forget.add_argument("--json", action="store_true", help="print the report as JSON")
    export = sub.add_parser("export", help="every stored event and identity row of a person, as JSON lines on stdout")
    _who(export)
    export.add_argument("--timeout", type=float, default=60.0, help="seconds per read (default 60)")
    return parser


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    who = {"uid": args.uid, "user_id": args.user_id, "person": args.person}
    named = next(f"{k.replace('_', ' ')} {v}" for k, v in who.items() if v)
    if args.action == "forget" and not args.yes and not _confirmed(named):
        print("band privacy forget: not confirmed; nothing was deleted (pass --yes to skip the question)", file=sys.stderr)
        return 2
    try:
        if args.action == "forget":
            return asyncio.run(_forget(args, who))
        return asyncio.run(_export(args, who))
    except KeyboardInterrupt:
        return 130
    except RPCError as exc:
        hint = " (is the store running? 'band up' starts it, or 'band store')" if exc.code == 503 else ""
        print(f"band privacy {args.action}: {exc.message}{hint}", file=sys.stderr)
        return 1


def _confirmed(named: str) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"Forget {named}: delete every event, stream message, dead letter and segment of this person "
                   "and every identifier joined to them? This cannot be undone. [y/N] ")
    return answer.strip().lower() in ("y", "yes")


async def _connected(url: str) -> Any:
    import nats.errors

    from .._runtime.connect import connect

    try:
        return await connect(url, name="band-cli", max_reconnect_attempts=0, allow_reconnect=False)
    except (nats.errors.NoServersError, OSError) as exc:
        raise RPCError(f"no NATS at {url} ({exc}): start the dev stack with 'band up' or set NATS_URL", 503) from None


async def _forget(args: argparse.Namespace, who: dict[str, Any]) -> int:
    nc = await _connected(nats_url(args.nats))
    try:
        report = await forget_call(nc, f"cli:{getpass.getuser()}", who)
    finally:
        await nc.close()
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"forgotten: {report['identifiers']} identifiers, {report['tombstones']} new tombstones")
    for table, n in sorted(report["rows"].items()):
        print(f"  {n:>10,}  rows in {table}")
    print(f"  {report['rows_total']:>10,}  rows in all")
    print(f"  {report['stream']:>10,}  stream messages ({report['stream_stored']:,} stored, "
          f"{report['stream_unstored']:,} not yet stored)")
    print(f"  {report['dead_letters']:>10,}  dead letters")
    print(f"  {'-' if report['redis'] is None else format(report['redis'], ','):>10}  Redis segments"
          + (" (no Redis configured)" if report["redis"] is None else ""))
    print(f"finished {report['finished']} ({report['seconds']:.1f} s); tombstones {', '.join(report['hashes'])}")
    return 0


async def forget_call(nc: Any, by: str, who: dict[str, Any]) -> dict[str, Any]:
    """The store's ``forget``, called again while it runs (each call answers within its
    ``wait``), until its report."""
    from .._core.rpc import RPC

    while True:
        report: dict[str, Any] = await RPC(lambda: nc).request("store", "forget", timeout__=CALL_TIMEOUT_S, by=by,
                                                               wait=WAIT_S, **who)
        if not report.get("running"):
            return report
        if sys.stderr.isatty():
            sys.stderr.write(f"\rforgetting… {report.get('seconds', 0):.0f} s")
            sys.stderr.flush()


async def _export(args: argparse.Namespace, who: dict[str, Any]) -> int:
    """One JSON line per row, ``{"table": ..., "row": {...}}``; the count so far on stderr."""
    from .. import store
    from .._core.app import App, reset_current, set_current
    from .._core.rpc import RPC

    nc = await _connected(nats_url(args.nats))
    app = App("band-cli")
    app.nc = nc
    token = set_current(app)
    n = 0
    try:
        found = await RPC(lambda: nc).request("store", "person", timeout__=args.timeout, **who)
        for table, sql in sorted(found["selects"].items()):
            _, rows = await store.stream_result(sql, timeout__=args.timeout)
            async for row in rows:
                sys.stdout.write(json.dumps({"table": table, "row": row}, ensure_ascii=False) + "\n")
                n += 1
                if n % 1000 == 0:
                    sys.stderr.write(f"\r{n:,} rows")
                    sys.stderr.flush()
        sys.stdout.flush()
    finally:
        reset_current(token)
        await nc.close()
    sys.stderr.write(f"\r{n:,} rows of {len(found['identifiers'])} identifiers ({', '.join(found['identifiers'])})\n")
    return 0


__all__ = ["CALL_TIMEOUT_S", "WAIT_S", "forget_call", "main"]
