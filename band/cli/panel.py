"""``band panel``: the operator's web panel (band.panel)."""

from __future__ import annotations

from ..panel import command
from .parser import Commands


def register(commands: Commands) -> None:
    command.add_arguments(commands.add("panel", command.SYNOPSIS, command.SUMMARY, command.run, description=command.DESCRIPTION))
