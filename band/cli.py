"""The ``band`` command: run services, the edge, the dev stack; look inside a running system."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Sequence

DESCRIPTION = """band: small Python services for event pipelines on NATS.

  band up [PATH...]        the dev stack: NATS (started if none answers), the edge, every service
  band run PATH            run one service (a directory with main.py + config.yml, or a .py file)
  band edge                run the HTTP edge
  band ls [--stats]        services, instances and endpoints, from the NATS micro protocol
  band call SVC METHOD k=v call a method over RPC (k=text, k:=json) and print the answer as JSON
  band tail [SUBJECT]      follow events as they pass (default: in.>)
  band new NAME            write a service skeleton with a passing test
  band sql "SELECT ..."    query the store (every event, in ClickHouse); --format json|csv|tsv
  band store [replay|status]  run the store service; re-read the stream into it; its health

NATS_URL (default nats://127.0.0.1:4222, comma-separated for a cluster) says where NATS is."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="band", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run one service", description="Run one service until SIGTERM/SIGINT, then stop it cleanly (drain, finish in-flight requests, cleanups).")
    run.add_argument("path", help="a service directory (main.py + config.yml) or a .py file")
    run.add_argument("--nats", help="NATS URL(s), comma-separated (default: $NATS_URL or nats://127.0.0.1:4222)")
    run.add_argument("--name", help="service name (default: config 'name', else the directory/file name)")
    run.add_argument("--reload", action="store_true", help="restart the service when a file in its directory changes (development)")

    edge = sub.add_parser("edge", help="run the HTTP edge", description="Run the HTTP edge (the same as python -m broker); see band edge --help.", add_help=False)
    edge.add_argument("args", nargs=argparse.REMAINDER)

    up = sub.add_parser("up", help="the dev stack in one command", description="Start NATS if none answers at $NATS_URL (JetStream, data in ./.band/), the edge on :8080 ($PORT), then every service under PATH (default examples/), each its own process with logs prefixed by name. Ctrl-C stops all, in reverse order.")
    up.add_argument("paths", nargs="*", default=["examples"], help="service directories, .py files, or folders holding them")
    up.add_argument("--port", type=int, help="edge port (default: $PORT or 8080)")
    up.add_argument("--data", default=".band", help="where a started nats-server keeps JetStream data")
    up.add_argument("--reload", action="store_true", help="restart a service when a file in its directory changes (development)")

    ls = sub.add_parser("ls", help="list services", description="List running services, their instances and endpoints (role, keys, path), from $SRV.INFO.")
    ls.add_argument("--stats", action="store_true", help="add request and error counts and average processing time")
    ls.add_argument("--json", action="store_true", help="print the raw micro responses as JSON")
    ls.add_argument("--wait", type=float, default=0.5, help="seconds to collect answers (default 0.5)")
    ls.add_argument("--nats", help="NATS URL(s)")

    call = sub.add_parser("call", help="call a method", description="Call SERVICE.METHOD over RPC and print the answer as JSON. Parameters: key=value gives a string, key:=value a JSON value (key:=3, key:='[1,2]'). Exit 1 on error or timeout, with the reason.")
    call.add_argument("service")
    call.add_argument("method")
    call.add_argument("params", nargs="*", metavar="key=text|key:=json")
    call.add_argument("--json", dest="json_params", help="parameters as one JSON object")
    call.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    call.add_argument("--nats", help="NATS URL(s)")

    tail = sub.add_parser("tail", help="follow events", description="Print every message on SUBJECT (default in.>, the events) as pretty JSON, or one line each with --raw.")
    tail.add_argument("subject", nargs="?", default="in.>")
    tail.add_argument("--raw", action="store_true", help="one line per event")
    tail.add_argument("--count", type=int, default=0, help="exit after this many events (default: follow forever)")
    tail.add_argument("--nats", help="NATS URL(s)")

    new = sub.add_parser("new", help="write a service skeleton", description="Write NAME/main.py, NAME/config.yml and NAME/test_NAME.py: a handler, an RPC method and a test that passes as written.")
    new.add_argument("name")
    new.add_argument("--dir", default=".", help="parent directory (default: here)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["edge"]:  # hand everything after 'edge' to the edge's own parser
        from broker.cli import main as edge_main

        return edge_main(argv[1:])
    if argv[:1] in (["sql"], ["store"]):  # the store's own parser (band/store/cli.py)
        from .store.cli import main as store_main

        return store_main(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    from ._core import log

    log.configure()  # to stderr: stdout carries the command's own output
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "run":
        if args.reload:
            from . import reload

            return reload.run(args.path, args.nats, args.name)
        from ._runtime.runner import run

        return run(args.path, args.nats, args.name)
    if args.command == "up":
        from .devstack import up

        return up([Path(p) for p in args.paths], port=args.port, data=Path(args.data), reload=args.reload)
    if args.command == "new":
        from .scaffold import create

        try:
            folder = create(args.name, Path(args.dir))
        except (ValueError, FileExistsError) as exc:
            print(f"band new: {exc}", file=sys.stderr)
            return 2
        print(f"created {folder}: run it with 'band run {folder}', test it with 'pytest {folder}'")
        return 0
    from ._runtime import ops

    commands = {"ls": ops.ls, "call": ops.call, "tail": ops.tail}
    try:
        return asyncio.run(commands[args.command](args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `band tail | head`: the reader left
        sys.stderr.close()
        return 0


def print_json(value: Any, raw: bool = False) -> None:
    print(json.dumps(value, ensure_ascii=False, separators=(",", ":")) if raw else json.dumps(value, ensure_ascii=False, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
