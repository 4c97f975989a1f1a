"""``band sql`` and ``band store``: the store's own command line (``band.store.cli``)."""

from __future__ import annotations

import argparse

from .parser import Commands


def register(commands: Commands) -> None:
    for name, synopsis, summary in (
        ("sql", '"SELECT ..."', "query the store (every event, in ClickHouse); --format json|csv|tsv"),
        ("store", "[replay|status]", "run the store service; re-read the stream into it; its health"),
    ):
        parser = commands.add(name, synopsis, summary, run, add_help=False)  # its own parser answers --help
        parser.add_argument("args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    from ..store.cli import main

    return main([args.command, *args.args])
