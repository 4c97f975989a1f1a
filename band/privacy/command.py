"""``band privacy``: its entry in the ``band`` command (light: :mod:`.cli` is imported
only when it runs)."""

from __future__ import annotations

from ..cli.parser import Commands


def register(commands: Commands) -> None:
    """``band privacy forget|export``."""
    commands.add_own("privacy", "[forget|export] --uid U | --user-id X | --person P",
                     "forget a person (every row, stream message, dead letter of theirs) or export their events", privacy)


def privacy(argv: list[str]) -> int:
    from .cli import main

    return main(argv)


__all__ = ["privacy", "register"]
