"""``band demo``: the demo traffic generator's command line (``band.demo.cli``)."""

from __future__ import annotations

import argparse

from .parser import Commands


def register(commands: Commands) -> None:
    parser = commands.add("demo", "[--store|--jsonl FILE]", "generate demo traffic (visitors, sessions, campaigns, purchases)", run, add_help=False)
    parser.add_argument("args", nargs=argparse.REMAINDER)  # its own parser answers --help


def run(args: argparse.Namespace) -> int:
    from ..demo.cli import main

    return main(args.args)
