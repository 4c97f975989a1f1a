"""``python -m broker`` / ``band edge``: run the edge, in one process or N on one port.

``--workers N`` starts N processes that each bind the port with ``SO_REUSEPORT``; the
kernel spreads connections across them. SIGINT/SIGTERM stop each one cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import signal
import sys
from typing import Any

from aiohttp import web

from band import tracing
from band._core import log as band_log
from band._runtime.signals import Signals

from .app import make_app
from .config import ConfigError, EdgeConfig, from_env, split_urls
from .libjs import LibJs
from .tls import server_context

log = logging.getLogger("broker")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="band edge", description="band's HTTP edge: hits in, NATS pipeline, answers out.")
    parser.add_argument("--host", default=None, help="bind address (env HOST; default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None, help="port (env PORT; default 8080)")
    parser.add_argument("--workers", type=int, default=None, help="processes sharing the port (SO_REUSEPORT; default 1)")
    parser.add_argument("--nats-url", default=None, help="NATS server(s), comma-separated (env NATS_URL)")
    parser.add_argument("--certfile", default=None, help="serve HTTPS/WSS with this PEM certificate chain (env EDGE_CERTFILE)")
    parser.add_argument("--keyfile", default=None, help="the certificate's PEM private key (env EDGE_KEYFILE)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


async def serve(config: EdgeConfig, *, reuse_port: bool = False, stop: asyncio.Event | None = None) -> None:
    """Run one edge until ``stop`` is set (or SIGINT/SIGTERM), then shut down in order.

    The port binds before NATS answers (hits get 503 until it does); a signal stops
    the edge in every state: starting, serving, or finishing in-flight hits.
    """
    tls = server_context(config)
    async with Signals(stop) as signals:
        runner = web.AppRunner(make_app(config), access_log=None, shutdown_timeout=config.shutdown_timeout_s)
        try:
            await runner.setup()
            site = web.TCPSite(runner, config.host, config.port, reuse_port=reuse_port or None, backlog=1024, ssl_context=tls)
            await site.start()
            log.info("band edge listening on %s://%s:%d (pid %d)", "https" if tls else "http", config.host, config.port, os.getpid())
            with signals.graceful():
                await signals.requested.wait()
            log.info("band edge stopping: finishing in-flight hits")
        finally:
            await runner.cleanup()


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()


def run_worker(config: EdgeConfig, reuse_port: bool, log_level: str) -> None:
    band_log.configure({**os.environ, "LOG_LEVEL": log_level})  # JSON_LOGS=1: one JSON object per line, as services
    _use_uvloop()
    tracing.setup("edge")  # only when OTEL_* asks for it
    try:
        asyncio.run(serve(config, reuse_port=reuse_port))
    finally:
        tracing.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``band edge`` and ``python -m broker``; returns the exit code."""
    args = parse_args(argv)
    overrides: dict[str, Any] = {"host": args.host, "port": args.port, "workers": args.workers, "certfile": args.certfile, "keyfile": args.keyfile}
    if args.nats_url:
        overrides["nats_urls"] = split_urls(args.nats_url)
    try:
        config = from_env(**overrides)
        server_context(config)  # a bad certificate or key stops here, naming the file
        LibJs(config)  # and so does an unreadable lib_file
    except ConfigError as exc:
        print(f"band edge: {exc}", file=sys.stderr)
        return 2
    if config.workers == 1:
        try:
            run_worker(config, False, args.log_level)
        except KeyboardInterrupt:
            pass
        return 0
    return _run_workers(config, args.log_level)


def _run_workers(config: EdgeConfig, log_level: str) -> int:
    """N worker processes on one port; a signal to the parent is passed on to each."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=run_worker, args=(config, True, log_level), name=f"band-edge-{i}") for i in range(config.workers)]
    for proc in procs:
        proc.start()

    def forward(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = 0
    for proc in procs:
        proc.join()
        exitcode = proc.exitcode or 0
        if exitcode == -signal.SIGTERM:  # stopped by the signal we passed on before it could install its own
            exitcode = 0
        code = code or exitcode
    return code


__all__ = ["main", "serve", "parse_args"]
