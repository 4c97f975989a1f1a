"""``band edge``: the HTTP edge's command line. The edge itself (``broker``) is imported
only when the command runs, so ``band`` does not depend on it at import."""

from __future__ import annotations

import argparse
import os

from . import target
from .parser import Commands


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


DESCRIPTION = "band's HTTP edge: hits in, NATS pipeline, answers out."


def register(commands: Commands) -> None:
    edge = commands.add("edge", "", "run the HTTP edge", run, description=DESCRIPTION)
    add_options(edge)


def run(args: argparse.Namespace) -> int:
    from broker.cli import run as run_edge

    args.nats = target.nats_url(args.nats)
    return run_edge(args)
