"""``band provision PATH...``: the events stream and every durable listener's consumer,
made by the operator's credential before the services start; the events and dead-letter
streams brought to the retention config says (``BAND_STREAM_MAX_AGE``, ``BAND_DLQ_MAX_AGE``, ...).

A credential that may create its own consumer may also make it a push consumer that
delivers events to any subject (NATS checks the consumer's name, not where it delivers).
Where that matters, the operator provisions the consumers with this command and the
services' users keep only their consumers' INFO, MSG.NEXT and ACK subjects; a durable
listener then uses the consumer it finds (docs/operating.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ..errors import ConfigError
from . import target
from .parser import Commands


def register(commands: Commands) -> None:
    """``band provision``."""
    cmd = commands.add(
        "provision", "[PATH...]", "make the events stream and each durable listener's consumer (the operator's credential)", run,
        description="Create or update the events stream and the pull consumer of every durable listener of the services under "
                    "PATH (default examples/), with the credential of --nats / $NATS_URL, so that services may run with users "
                    "that cannot create consumers. The events stream and the dead-letter stream keep what "
                    "BAND_STREAM_MAX_AGE / BAND_STREAM_MAX_BYTES and BAND_DLQ_MAX_AGE / BAND_DLQ_MAX_BYTES say.",
    )
    cmd.add_argument("paths", nargs="*", default=["examples"], help="service directories, or folders of them (default examples/)")
    cmd.add_argument("--nats", help="NATS URL(s) with the operator's credential (default: $NATS_URL, ./.band/nats.url)")
    cmd.add_argument("--timeout", type=float, default=10.0, help="seconds to reach NATS (default 10)")


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(provision([Path(p) for p in args.paths], args.nats, args.timeout))
    except (ConfigError, target.Unreachable, FileNotFoundError) as exc:
        print(f"band provision: {exc}", file=sys.stderr)
        return 2


async def provision(paths: list[Path], nats: str | None, timeout: float) -> int:
    """Make the stream and the consumers; one line per consumer on stdout."""
    from .. import wire
    from .._core.loader import load_service
    from .._runtime.durable import consumer_config
    from .._runtime.options import ServiceOptions
    from .._runtime.stream import apply_retention, dlq_stream_config, stream_config
    from .devstack import find_services

    apps = [load_service(path) for path in find_services(paths)]
    nc = await target.reach(nats, "band-provision", timeout)
    try:
        js = nc.jetstream()
        for stream in (stream_config(), dlq_stream_config()):
            change = await apply_retention(js, stream)
            if change:
                print(f"stream {stream.name}: {change}", file=sys.stderr)
        made = 0
        for app in apps:
            slots = ServiceOptions.from_app(app).max_inflight
            for ep in app.registry.by_role("listener"):
                if ep.durable:
                    config = consumer_config(app.name, ep, slots)
                    await js.add_consumer(wire.STREAM, config)
                    print(f"{config.durable_name}  ({app.name}.{ep.method}, {config.filter_subject or config.filter_subjects})")
                    made += 1
        print(f"streams {wire.STREAM}, {wire.DLQ_STREAM} and {made} consumer(s) ready", file=sys.stderr)
        return 0
    finally:
        await nc.close()


__all__ = ["provision", "register", "run"]
