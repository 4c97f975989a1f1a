"""The ``band`` command line: one parser, and the registry command groups add to.

A command group is a module in ``band/cli/`` with ``register(commands)``, which calls
:meth:`Commands.add` once per command; ``GROUPS`` in ``band/cli/__init__.py`` lists them
in the order ``band --help`` shows them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Run = Callable[[argparse.Namespace], int]  # a command: parsed arguments in, exit code out
Main = Callable[[list[str]], int]  # a command with a parser of its own: its raw arguments in


@dataclass
class Commands:
    """The ``band`` subcommands and the one-line synopses the top-level help lists."""

    sub: Any  # argparse's _SubParsersAction, which has no public name
    synopses: list[tuple[str, str]] = field(default_factory=list)
    own_parsers: dict[str, Main] = field(default_factory=dict)

    def add(self, name: str, synopsis: str, summary: str, run: Run, **options: Any) -> argparse.ArgumentParser:
        """A subcommand ``band NAME``; ``run(args)`` executes it. ``options`` go to argparse."""
        options.setdefault("description", summary[:1].upper() + summary[1:] + ".")
        parser: argparse.ArgumentParser = self.sub.add_parser(name, help=summary, **options)
        parser.set_defaults(run=run)
        self.synopses.append((f"band {name} {synopsis}".rstrip(), summary))
        return parser

    def add_own(self, name: str, synopsis: str, summary: str, main: Main) -> None:
        """A subcommand that parses its own arguments (``--help`` included): ``band``'s
        ``main`` hands it everything after ``band NAME`` untouched, before argparse sees it."""
        self.sub.add_parser(name, help=summary, add_help=False)  # only so argparse names it among the commands
        self.synopses.append((f"band {name} {synopsis}".rstrip(), summary))
        self.own_parsers[name] = main


__all__ = [
    "Commands",
    "Main",
    "Run",
]
