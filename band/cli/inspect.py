"""``band ls``, ``band call``, ``band tail``: look into a running system from the shell.

Each reaches NATS within its ``--timeout`` or fails with one line naming the URL; exit
codes: 0 done, 1 failed (unreachable, an error answer, a timeout), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any

from nats.aio.msg import Msg

from .. import wire
from .._core.rpc import RPC
from .._runtime.micro import collect as gather_micro
from ..errors import RPCError
from ..response import ErrorResponse, Response
from . import target
from .parser import Commands

CONNECT_TIMEOUT_S = 3.0


def register(commands: Commands) -> None:
    ls = commands.add(
        "ls", "[--stats]", "services, instances and endpoints, from the NATS micro protocol", ls_command,
        description="List running services, their instances and endpoints (role, keys, path), from $SRV.INFO.",
    )
    ls.add_argument("--stats", action="store_true", help="add request and error counts and average processing time")
    ls.add_argument("--json", action="store_true", help="print the raw micro responses as JSON")
    ls.add_argument("--wait", type=float, default=0.5, help="seconds to collect answers (default 0.5)")
    _nats_options(ls, CONNECT_TIMEOUT_S, "seconds to reach NATS")

    call = commands.add(
        "call", "SVC METHOD k=v", "call a method over RPC (k=text, k:=json) and print the answer as JSON", call_command,
        description="Call SERVICE.METHOD over RPC and print the answer as JSON on stdout. Parameters: key=value "
        "gives a string, key:=value a JSON value (key:=3, key:='[1,2]'). An error (an error answer, an exception "
        "in the method, no such service, a timeout) exits 1 with its code and message on stderr; an error answer's "
        "JSON still goes to stdout.",
    )
    call.add_argument("service")
    call.add_argument("method")
    call.add_argument("params", nargs="*", metavar="key=text|key:=json")
    call.add_argument("--json", dest="json_params", help="parameters as one JSON object")
    _nats_options(call, 2.0, "seconds to reach NATS, then seconds to wait for the answer")

    tail = commands.add(
        "tail", "[SUBJECT]", "follow events as they pass (default: in.>)", tail_command,
        description="Print every message on SUBJECT (default in.>, the events) as pretty JSON, or one line each with --raw.",
    )
    tail.add_argument("subject", nargs="?", default="in.>")
    tail.add_argument("--raw", action="store_true", help="one line per event")
    tail.add_argument("--count", type=int, default=0, help="exit after this many events (default: follow forever)")
    _nats_options(tail, CONNECT_TIMEOUT_S, "seconds to reach NATS")


def _nats_options(parser: argparse.ArgumentParser, timeout: float, what: str) -> None:
    parser.add_argument("--nats", help="NATS URL(s), comma-separated (default: $NATS_URL, ./.band/nats.url, nats://127.0.0.1:4222)")
    parser.add_argument("--timeout", type=float, default=timeout, help=f"{what} (default {timeout:g})")


def ls_command(args: argparse.Namespace) -> int:
    return _run(ls(args), "ls")


def call_command(args: argparse.Namespace) -> int:
    return _run(call(args), "call")


def tail_command(args: argparse.Namespace) -> int:
    return _run(tail(args), "tail")


def _run(command: Any, name: str) -> int:
    try:
        return int(asyncio.run(command))
    except target.Unreachable as exc:
        print(f"band {name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `band tail | head`: the reader left
        sys.stderr.close()
        return 0


def _describe_endpoint(md: dict[str, str]) -> str:
    role = md.get(wire.MD_ROLE, "?")
    parts = [role.ljust(8)]
    if md.get(wire.MD_KEY):
        parts.append(md[wire.MD_KEY])
    keys = wire.metadata_list(md, wire.MD_KEYS)
    if role in (wire.ROLE_ENRICHER, wire.ROLE_LISTENER):
        parts.append("keys=" + (",".join(keys) if keys else "*"))
    if md.get(wire.MD_PATH):
        parts.append(f"path={md[wire.MD_PATH]}")
    if md.get(wire.MD_TIMEOUT):
        parts.append(f"timeout={md[wire.MD_TIMEOUT]}ms")
    if md.get(wire.MD_DURABLE) == "true":
        parts.append("durable")
    return "  ".join(parts)


async def ls(args: argparse.Namespace) -> int:
    nc = await target.reach(args.nats, "band-ls", args.timeout)
    try:
        infos = await gather_micro(nc, "INFO", args.wait)
        stats = await gather_micro(nc, "STATS", args.wait) if args.stats else []
    finally:
        await nc.close()
    if args.json:
        print(json.dumps({"info": infos, "stats": stats}, indent=2))
        return 0
    if not infos:
        print("no services answered $SRV.INFO")
        return 0
    by_id = {s["id"]: s for s in stats}
    for name in sorted({i["name"] for i in infos}):
        instances = [i for i in infos if i["name"] == name]
        print(f"{name}  ({len(instances)} instance{'s' if len(instances) != 1 else ''}, version {instances[0].get('version', '?')})")
        for inst in instances:
            line = f"  instance {inst['id']}"
            st = by_id.get(inst["id"])
            if st:
                req = sum(e.get("num_requests", 0) for e in st["endpoints"])
                err = sum(e.get("num_errors", 0) for e in st["endpoints"])
                line += f"  requests={req} errors={err}"
            print(line)
        endpoints = {}
        for ep in instances[0].get("endpoints", []):
            endpoints[ep["name"]] = ep
        for ep_name, ep in endpoints.items():
            line = f"    {ep_name:<24} {ep['subject']:<40} {_describe_endpoint(ep.get('metadata') or {})}"
            if args.stats:
                rows = [e for inst in instances for e in by_id.get(inst["id"], {}).get("endpoints", []) if e["name"] == ep_name]
                count = sum(r["num_requests"] for r in rows)
                errors = sum(r["num_errors"] for r in rows)
                total = sum(r["processing_time"] for r in rows)
                average_ms = total / count / 1e6 if count else 0.0
                line += f"  requests={count} errors={errors} avg={average_ms:.2f}ms"
            print(line)
    return 0


def call_params(pairs: list[str], json_text: str | None) -> dict[str, Any]:
    """``key=text`` and ``key:=json`` pairs (as httpie spells them) over a ``--json`` object."""
    params: dict[str, Any] = {}
    if json_text:
        loaded = json.loads(json_text)
        if not isinstance(loaded, dict):
            raise ValueError("--json must be a JSON object")
        params.update(loaded)
    for pair in pairs:
        raw_json = re.match(r"^([^=:]+):=(.*)$", pair, re.S)
        if raw_json:
            try:
                params[raw_json.group(1)] = json.loads(raw_json.group(2))
            except ValueError:
                raise ValueError(f"parameter {pair!r}: the value after := is not JSON") from None
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"parameter {pair!r} is not key=value (text) or key:=value (JSON)")
        params[key] = value
    return params


async def call(args: argparse.Namespace) -> int:
    try:
        params = call_params(args.params, args.json_params)
    except ValueError as exc:
        print(f"band call: {exc}", file=sys.stderr)
        return 2
    nc = await target.reach(args.nats, "band-call", args.timeout)
    try:
        result = await RPC(lambda: nc).request(args.service, args.method, timeout__=args.timeout, **params)
    except RPCError as exc:
        print(f"band call: {args.service}.{args.method}: {type(exc).__name__} {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"band call: {exc}", file=sys.stderr)
        return 2
    finally:
        await nc.close()
    print(json.dumps(result.to_wire() if isinstance(result, Response) else result, ensure_ascii=False, indent=2), flush=True)
    if isinstance(result, ErrorResponse):  # the method answered an error: the JSON above, the failure here
        print(f"band call: {args.service}.{args.method} answered {result.statusCode}: {result.message}", file=sys.stderr)
        return 1
    return 0


async def tail(args: argparse.Namespace) -> int:
    nc = await target.reach(args.nats, "band-tail", args.timeout)
    done = asyncio.Event()
    seen = 0

    async def show(msg: Msg) -> None:
        nonlocal seen
        try:
            value: Any = json.loads(msg.data)
        except ValueError:
            value = msg.data.decode("utf-8", "replace")
        if args.raw:
            print(json.dumps(value, ensure_ascii=False, separators=(",", ":")), flush=True)
        else:
            print(f"--- {msg.subject}\n{json.dumps(value, ensure_ascii=False, indent=2)}", flush=True)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    await nc.subscribe(args.subject, cb=show)
    await nc.flush()
    print(f"following {args.subject} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        await done.wait()
    finally:
        await nc.close()
    return 0


__all__ = [
    "CONNECT_TIMEOUT_S",
    "call",
    "call_command",
    "call_params",
    "ls",
    "ls_command",
    "register",
    "tail",
    "tail_command",
]
