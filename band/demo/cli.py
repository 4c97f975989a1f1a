"""``band demo``: generate a site's traffic and send it through the edge, or write it out."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._runtime.state import edge_url
from .generate import generate

DESCRIPTION = """Generate demo traffic: visitors, sessions and events the way the web SDK sends them
(search, social, referral, direct and paid campaigns with UTM marks; page views, scrolls,
activity, lead forms, purchases with revenue; visitors returning on later days).

  band demo                         through the edge band up runs here (./.band/edge.url), else http://127.0.0.1:$PORT (default 8080)
  band demo --edge URL              through another edge
  band demo --store                 straight into the store's data directory (the store
                                    must not be running: stop the dev stack first)
  band demo --jsonl events.jsonl    the events as JSON lines (- for stdout), nothing sent
  band demo --costs-csv costs.csv   also the ad platforms' cost report for the same traffic
  band demo --bots 40               also 40 bot visitors, flagged in the bot column (reports leave them out)

The same --seed, --visitors, --days and --start give the same events."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="band demo", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--visitors", type=int, default=500, help="visitors (default 500)")
    p.add_argument("--days", type=int, default=14, help="days of traffic (default 14)")
    p.add_argument("--bots", type=int, default=0,
                   help="also this many bot visitors (crawlers, headless browsers, no user agent, referrer spam), "
                        "flagged as the edge flags them (default 0)")
    p.add_argument("--start", type=dt.date.fromisoformat, help="first day, YYYY-MM-DD (default: so that the last day is today, UTC)")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--edge",
        metavar="URL",
        help="the edge's base URL (default: the one band up runs in this directory, ./.band/edge.url; else http://127.0.0.1:$PORT, PORT defaulting to 8080)",
    )
    where.add_argument(
        "--store", nargs="?", const="", metavar="DIR", help="write into the store directly (default: its data_dir, ./.band/store); keeps the generated days"
    )
    where.add_argument("--jsonl", metavar="FILE", help="write the events as JSON lines instead of sending them")
    p.add_argument("--costs-csv", metavar="FILE", help="also write the ad platforms' cost report for this traffic as CSV")
    p.add_argument("--concurrency", type=int, default=16, help="visitors sent in parallel through the edge (default 16)")
    return p


class _Counter:
    """A running count on stderr, redrawn at most ten times a second."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.shown = 0.0
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self.shown >= (0.1 if self.tty else 2.0):
            self.shown = now
            end = "\n" if done == total or not self.tty else ""
            print(f"\r{self.what} {done}/{total} events", end=end, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.visitors < 0 or args.days < 1 or args.bots < 0:
        print("band demo: --visitors and --bots must be 0 or more and --days 1 or more", file=sys.stderr)
        return 2
    start = args.start or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.days - 1))
    events = generate(args.seed, args.visitors, args.days, start, args.bots)
    if args.costs_csv:
        from .costs import costs, to_csv

        report = costs(events, args.seed)
        Path(args.costs_csv).write_text(to_csv(report), encoding="utf-8")
        print(f"wrote {len(report)} cost lines to {args.costs_csv}", file=sys.stderr)
    if args.jsonl:
        out = sys.stdout if args.jsonl == "-" else open(args.jsonl, "w", encoding="utf-8")
        try:
            for event in events:
                out.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
        except BrokenPipeError:  # `band demo --jsonl - | head`: the reader left
            sys.stderr.close()
            return 0
        finally:
            if out is not sys.stdout:
                out.close()
        print(f"wrote {len(events)} events of {args.visitors} visitors over {args.days} days from {start}", file=sys.stderr)
        return 0
    if args.store is not None:
        return _to_store(events, args.store)
    from .edge import EdgeUnreachable, send

    url = edge_url(args.edge)
    try:
        sent = asyncio.run(send(events, url, args.concurrency, _Counter(f"sent to {url}:")))
    except EdgeUnreachable as exc:
        print(f"band demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"{sent.ok} events answered 2xx, {sent.failed} failed" + (f" ({sent.reasons})" if sent.failed else ""), file=sys.stderr)
    return 0 if sent.failed == 0 else 1


def _to_store(events: list[dict[str, Any]], data_dir: str) -> int:
    from ..errors import ConfigError
    from ..store.backend import StoreError
    from .direct import write

    try:
        counts = write(events, Path(data_dir) if data_dir else None, _Counter("stored"))
    except StoreError as exc:
        print(f"band demo: {exc.message}\n(is the store running? stop the dev stack first, or send through the edge: band demo)", file=sys.stderr)
        return 1
    except (OSError, ConfigError) as exc:
        print(f"band demo: cannot write the store: {exc}", file=sys.stderr)
        return 1
    print("rows written: " + ", ".join(f"{table} {n}" for table, n in sorted(counts.items())), file=sys.stderr)
    return 0


__all__ = [
    "DESCRIPTION",
    "main",
]
