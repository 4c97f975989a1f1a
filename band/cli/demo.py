"""``band demo``: the demo traffic generator's command line (``band.demo.cli``)."""

from __future__ import annotations

from .parser import Commands


def register(commands: Commands) -> None:
    commands.add_own("demo", "[--store|--jsonl FILE]", "generate demo traffic (visitors, sessions, campaigns, purchases)", main)


def main(argv: list[str]) -> int:
    from ..demo.cli import main as demo_main

    return demo_main(argv)
