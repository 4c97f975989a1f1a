"""``band edge`` (and ``python -m broker``): the edge's flags and its entry in the ``band``
command. Light on purpose: ``band --help`` imports it, and the edge itself (aiohttp, the
pipeline) is imported only when the command runs."""

from __future__ import annotations

import argparse
import os

from band.cli.parser import Commands
from band.runtime import nats_url

DESCRIPTION = "band's HTTP edge: hits in, NATS pipeline, answers out."


def add_options(parser: argparse.ArgumentParser) -> None:
    """The edge's flags, shared by ``band edge`` and ``python -m broker``."""
    parser.add_argument("--host", default=None, help="bind address (env HOST; default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (env PORT; default 8080)")
    parser.add_argument("--workers", type=int, default=None, help="processes sharing the port (SO_REUSEPORT; default 1)")
    parser.add_argument("--nats", default=None, help="NATS server(s), comma-separated (default: $NATS_URL, ./.band/nats.url, nats://127.0.0.1:4222)")
    parser.add_argument("--certfile", default=None, help="serve HTTPS/WSS with this PEM certificate chain (env EDGE_CERTFILE)")
    parser.add_argument("--keyfile", default=None, help="the certificate's PEM private key (env EDGE_KEYFILE)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """``python -m broker``'s arguments: the same flags as ``band edge``."""
    parser = argparse.ArgumentParser(prog="band edge", description=DESCRIPTION)
    add_options(parser)
    return parser.parse_args(argv)


def register(commands: Commands) -> None:
    """``band edge``."""
    edge = commands.add("edge", "", "run the HTTP edge", run, description=DESCRIPTION)
    add_options(edge)


def run(args: argparse.Namespace) -> int:
    """``band edge``: the NATS of ``--nats``, ``$NATS_URL`` or the ``band up`` run here."""
    from .cli import run as run_edge

    args.nats = nats_url(args.nats)
    return run_edge(args)


def main(argv: list[str] | None = None) -> int:
    """``python -m broker``; returns the exit code."""
    from .cli import run as run_edge

    return run_edge(parse_args(argv))


__all__ = ["DESCRIPTION", "add_options", "main", "parse_args", "register", "run"]
