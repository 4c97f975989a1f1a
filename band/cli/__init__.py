"""The ``band`` command: run services, the edge, the dev stack; look inside a running system.

Every subcommand is wired one way: the package it belongs to registers it, through an
entry point in the ``band.commands`` group (pyproject.toml) naming a light module's
``register(commands)``. ``band`` finds them in the installed metadata, so it imports no
feature (the edge, the store, the panel) until one of its commands runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from .parser import Commands

GROUP = "band.commands"
HELP_ORDER = ("up", "run", "edge", "inspect", "new", "store", "demo", "panel", "provision")  # the rest follow, by name

EPILOG = """Where NATS is: --nats URL, else $NATS_URL (comma-separated for a cluster), else
./.band/nats.url (written by band up in this directory), else nats://127.0.0.1:4222."""


def version() -> str:
    from .. import __version__

    return __version__


def registrations() -> list[metadata.EntryPoint]:
    """The installed ``band.commands`` entry points, in the order ``band --help`` lists them."""
    found = {ep.name: ep for ep in metadata.entry_points(group=GROUP)}
    order = {name: i for i, name in enumerate(HELP_ORDER)}
    return sorted(found.values(), key=lambda ep: (order.get(ep.name, len(order)), ep.name))


def parser() -> argparse.ArgumentParser:
    """``band``'s parser, with every command group registered."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, Commands]:
    top = argparse.ArgumentParser(
        prog="band", usage="band [-h] [--version] COMMAND [ARGS...]", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG
    )
    top.add_argument("--version", action="version", version=f"band {version()}")
    commands = Commands(top.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS))  # listed above
    for entry in registrations():
        entry.load()(commands)
    width = max(len(synopsis) for synopsis, _ in commands.synopses)
    top.description = "band: small Python services for event pipelines on NATS.\n\n" + "\n".join(
        f"  {synopsis:<{width}}  {summary}" for synopsis, summary in commands.synopses
    )
    return top, commands


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``band`` script; returns the exit code."""
    from .._runtime.signals import stop_before_serving

    stop_before_serving()  # first: the imports below take a while on a busy machine
    top, commands = _build()
    argv = sys.argv[1:] if argv is None else list(argv)
    own = commands.own_parsers.get(argv[0]) if argv else None
    if own is not None:  # argparse would take its options (--help, --seed) for band's own
        from .._core import log

        log.configure()
        return int(own(argv[1:]))
    args = top.parse_args(argv)
    if args.command is None:
        top.print_help()
        return 2
    from .._core import log

    log.configure()  # to stderr: stdout carries the command's own output
    return int(args.run(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


__all__ = [
    "EPILOG",
    "GROUP",
    "HELP_ORDER",
    "main",
    "parser",
    "registrations",
    "version",
]
