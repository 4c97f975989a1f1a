"""``band demo``: its entry in the ``band`` command (light: the generator, ``band.demo.cli``,
is imported only when it runs)."""

from __future__ import annotations

from ..cli.parser import Commands


def register(commands: Commands) -> None:
    """``band demo``."""
    commands.add_own("demo", "[--store|--jsonl FILE]", "generate demo traffic (visitors, sessions, campaigns, purchases)", main)


def main(argv: list[str]) -> int:
    from .cli import main as demo_main

    return demo_main(argv)


__all__ = ["main", "register"]
