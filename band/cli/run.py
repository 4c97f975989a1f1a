"""``band run PATH``: one service in this process (the runtime does the work)."""

from __future__ import annotations

import argparse

from . import target
from .parser import Commands


def register(commands: Commands) -> None:
    run = commands.add(
        "run", "PATH", "run one service (a directory with main.py + config.yml, or a .py file)", run_service,
        description="Run one service until SIGTERM/SIGINT, then stop it cleanly (drain, finish in-flight requests, cleanups).",
    )
    run.add_argument("path", help="a service directory (main.py + config.yml) or a .py file")
    run.add_argument("--nats", help="NATS URL(s), comma-separated (default: $NATS_URL, ./.band/nats.url, nats://127.0.0.1:4222)")
    run.add_argument("--name", help="service name (default: config 'name', else the directory/file name)")
    run.add_argument("--reload", action="store_true", help="restart the service when a file in its directory changes (development)")


def run_service(args: argparse.Namespace) -> int:
    if args.reload:
        from . import reload

        return reload.run(args.path, target.nats_url(args.nats), args.name)
    from .._runtime.runner import run

    return run(args.path, target.nats_url(args.nats), args.name)


__all__ = [
    "register",
    "run_service",
]
