"""``band panel``'s arguments and entry point, for whichever parser the ``band`` command builds."""

from __future__ import annotations

import argparse

from ..cli.parser import Commands

SYNOPSIS = ""
SUMMARY = "the operator's web panel and its JSON / JSON-RPC API (127.0.0.1:8081)"
DESCRIPTION = (
    "Serve the operator's panel and its API. Beyond localhost it needs PANEL_TOKEN or PANEL_USER/PANEL_PASSWORD; "
    "without them on localhost it makes a token and prints the login link."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default: $PANEL_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: $PANEL_PORT or 8081)")
    parser.add_argument("--edge", help="the edges' base URLs, comma-separated, whose /metrics to show (default: $PANEL_EDGE_URLS or http://127.0.0.1:8080)")
    parser.add_argument("--nats", help="NATS URL(s)")


def register(commands: Commands) -> None:
    """``band panel``."""
    add_arguments(commands.add("panel", SYNOPSIS, SUMMARY, run, description=DESCRIPTION))


def run(args: argparse.Namespace) -> int:
    from .app import main

    return main(args)


__all__ = ["DESCRIPTION", "SUMMARY", "SYNOPSIS", "add_arguments", "register", "run"]
