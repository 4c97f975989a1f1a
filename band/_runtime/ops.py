"""``band ls``, ``band call``, ``band tail``: look into a running system from the shell."""

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
from .connect import connect
from .micro import collect as gather_micro
from ..errors import RPCError
from ..response import Response


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
    nc = await connect(args.nats, name="band-ls", max_reconnect_attempts=0)
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
    nc = await connect(args.nats, name="band-call", max_reconnect_attempts=0)
    try:
        result = await RPC(lambda: nc).request(args.service, args.method, timeout__=args.timeout, **params)
    except RPCError as exc:
        print(f"band call: {type(exc).__name__} ({exc.code}): {exc.message}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"band call: {exc}", file=sys.stderr)
        return 2
    finally:
        await nc.close()
    print(json.dumps(result.to_wire() if isinstance(result, Response) else result, ensure_ascii=False, indent=2))
    return 0


async def tail(args: argparse.Namespace) -> int:
    nc = await connect(args.nats, name="band-tail")
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
