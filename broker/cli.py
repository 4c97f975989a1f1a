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
import secrets
import signal
import sys
from typing import Any

from aiohttp import web

from band import schemas, tracing
from band.runtime import Signals, configure_logging
from band.runtime import run as run_loop

from .app import make_app
from .config import ConfigError, EdgeConfig, from_env, split_urls
from .libjs import LibJs
from .stopping import HANDLERS_SHARE
from .tls import server_context

log = logging.getLogger("broker")


async def serve(config: EdgeConfig, *, reuse_port: bool = False, stop: asyncio.Event | None = None) -> None:
    """Run one edge until ``stop`` is set (or SIGINT/SIGTERM), then shut down in order.

    The port binds before NATS answers (hits get 503 until it does); a signal stops
    the edge in every state: starting, serving, or finishing in-flight hits.
    """
    tls = server_context(config)
    async with Signals(stop) as signals:
        # aiohttp waits its share for in-flight hits; body reads and the NATS drain share the rest (broker.stopping)
        runner = web.AppRunner(make_app(config), access_log=None, shutdown_timeout=config.shutdown_timeout_s * HANDLERS_SHARE)
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


def run_worker(config: EdgeConfig, reuse_port: bool, log_level: str) -> None:
    configure_logging({**os.environ, "LOG_LEVEL": log_level})  # JSON_LOGS=1: one JSON object per line, as services
    tracing.setup("edge")  # only when OTEL_* asks for it
    try:
        run_loop(serve(config, reuse_port=reuse_port))  # uvloop when installed
    finally:
        tracing.shutdown()


def run(args: argparse.Namespace) -> int:
    """Run the edge with ``band edge``'s arguments (:mod:`broker.command`)."""
    overrides: dict[str, Any] = {"host": args.host, "port": args.port, "workers": args.workers, "certfile": args.certfile, "keyfile": args.keyfile}
    if args.nats:
        overrides["nats_urls"] = split_urls(args.nats)
    try:
        config = from_env(**overrides)
        server_context(config)  # a bad certificate or key stops here, naming the file
        LibJs(config)  # and so does an unreadable lib_file
        schemas.load(config.schemas_dir)  # and an invalid schema file
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
    """N worker processes on one port; a signal to the parent is passed on to each. They
    share one random privacy secret when none is configured (handed over in memory), so a
    visitor's cookieless uid and hashed address do not depend on the worker that answers."""
    if not config.privacy_secret:
        config = config.replace(privacy_secret=secrets.token_hex(32))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=run_worker, args=(config, True, log_level), name=f"band-edge-{i}") for i in range(config.workers)]
    for proc in procs:
        proc.start()

    forwarded = False

    def forward(signum: int, _frame: Any) -> None:
        nonlocal forwarded
        forwarded = True
        for proc in procs:
            if proc.is_alive() and proc.pid:
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    code = 0
    for proc in procs:
        proc.join()
        # a worker still starting when we passed the stop on dies of it before its handler is in: a stop all the same
        stopped = forwarded and proc.exitcode == -signal.SIGTERM
        code = code or (0 if stopped else proc.exitcode or 0)
    return code


__all__ = ["run", "serve"]
