"""One way to connect to NATS for services, the edge and the CLI.

Reconnects forever with backoff and logs each change, so a restarted nats-server is
survived without anyone's help; subscriptions resume with the connection.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import nats
from nats.aio.client import Client

from .. import wire
from .._core.log import Logger
from .cancel import cancellable

DEFAULT_URL = "nats://127.0.0.1:4222"
CLOSE_TIMEOUT_S = 1.0  # a close flushes what is still buffered; a stop waits for it this long at most
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def servers_from(url: str | list[str] | None = None) -> list[str]:
    """``NATS_URL`` (comma-separated for a cluster) unless given, else localhost."""
    if isinstance(url, list):
        return url
    raw = url or os.environ.get("NATS_URL") or DEFAULT_URL
    return [part.strip() for part in raw.split(",") if part.strip()]


def split_credentials(servers: list[str]) -> tuple[list[str], dict[str, str]]:
    """Move ``user:password@`` out of the URLs into connect options.

    nats-py adds the servers a cluster gossips without the credentials of the URL it
    came from, so failing over to one would be refused; options apply to every server.
    """
    plain: list[str] = []
    options: dict[str, str] = {}
    for server in servers:
        parsed = urlsplit(server if "://" in server else f"nats://{server}")
        if parsed.username is not None:
            found = (
                {"token": unquote(parsed.username)}  # nats://token@host
                if parsed.password is None
                else {"user": unquote(parsed.username), "password": unquote(parsed.password)}
            )
            if options and options != found:
                raise ValueError("every URL in NATS_URL must carry the same credentials")
            options = found
            netloc = parsed.hostname or ""
            netloc = f"[{netloc}]" if ":" in netloc else netloc
            server = urlunsplit(parsed._replace(netloc=f"{netloc}:{parsed.port}" if parsed.port else netloc))
        plain.append(server)
    return plain, options


def tls_from_env() -> ssl.SSLContext | None:
    """``NATS_CA`` (a CA file for a self-signed server cert) turns TLS verification on."""
    ca = os.environ.get("NATS_CA")
    if not ca:
        return None
    context = ssl.create_default_context(cafile=ca)
    cert, key = os.environ.get("NATS_CERT"), os.environ.get("NATS_KEY")
    if cert and key:
        context.load_cert_chain(cert, key)
    return context


def inbox_prefix_for(name: str, prefix: str | None = None) -> str:
    """The client's reply-inbox prefix: ``prefix``, else ``NATS_INBOX_PREFIX``, else
    ``_INBOX_<name>`` with every character that is not a letter, digit, ``_`` or ``-``
    made ``_`` (one subject token). nats.conf grants each user only its own prefix, so
    no client can read replies meant for another (docs/operating.md)."""
    chosen = prefix or os.environ.get("NATS_INBOX_PREFIX", "").strip()
    return chosen or wire.INBOX_PREFIX + _NOT_TOKEN.sub("_", name)


async def connect(
    url: str | list[str] | None = None,
    *,
    name: str,
    logger: Logger | None = None,
    inbox_prefix: str | None = None,
    **options: Any,
) -> Client:
    """A client that never gives up reconnecting (``max_reconnect_attempts=-1``).

    Replies (requests, JetStream acks and pulls, ``new_inbox()``) come back under
    :func:`inbox_prefix_for` ``(name, inbox_prefix)``.
    """
    log = logger or Logger(component="nats")
    servers, credentials = split_credentials(servers_from(url))
    last_error, repeats = "", 0

    async def disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):  # a close we asked for is not news
            log.warning("NATS disconnected; reconnecting")

    async def reconnected() -> None:
        nonlocal last_error, repeats
        last_error, repeats = "", 0
        log.info("NATS reconnected", server=str(nc.connected_url.netloc if nc.connected_url else ""))

    async def error(exc: Exception) -> None:
        """The same failure over and over (a retry every 0.5 s) is logged once, then every 100th time."""
        nonlocal last_error, repeats
        text = f"{type(exc).__name__}: {exc}"
        repeats = repeats + 1 if text == last_error else 1
        last_error = text
        if repeats == 1 or repeats % 100 == 0:
            log.warning(
                "NATS connection error; retrying (is nats-server running? NATS_URL sets where)",
                error=text, servers=",".join(servers), attempts=repeats,
            )

    settings: dict[str, Any] = {
        "name": name,
        "inbox_prefix": inbox_prefix_for(name, inbox_prefix),
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.5,
        "connect_timeout": 2,
        "ping_interval": 10,
        "max_outstanding_pings": 3,
        "disconnected_cb": disconnected,
        "reconnected_cb": reconnected,
        "error_cb": error,
    }
    context = tls_from_env()
    if context is not None:
        settings["tls"] = context
    settings.update(credentials)
    settings.update(options)
    nc: Client = await cancellable(nats.connect(servers, **settings), late=close)  # a stop ends the retries for sure
    return nc


async def flush(nc: Client, timeout: float = 5.0) -> None:
    """Make sure the server has everything sent so far (subscriptions above all).

    Flushed twice: nats-py writes a flush's PING ahead of commands still queued, so
    the first PONG can come back before the last SUBs are read; the second cannot.
    """
    await nc.flush(timeout=timeout)  # type: ignore[arg-type]
    await nc.flush(timeout=timeout)  # type: ignore[arg-type]


async def close(nc: Client, logger: Logger | None = None, timeout: float = CLOSE_TIMEOUT_S) -> None:
    """Close ``nc`` in whatever state it is in, within ``timeout``; never raises.

    nats-py's close flushes what it still buffers to the socket first. With the server
    gone (killed, or not yet back) that write fails, and how depends on the loop:
    uvloop raises ``RuntimeError`` (the transport is closed), asyncio's loop
    ``ConnectionResetError`` or ``BrokenPipeError``. None of it can be acted on by a
    process that is stopping, and none of it may turn a clean stop into a traceback:
    it is logged as a warning and the stop goes on.
    """
    try:
        async with asyncio.timeout(timeout):
            await nc.close()
    except TimeoutError:
        (logger or Logger(component="nats")).warning("NATS connection not closed in time; leaving it", timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - the server went first: nothing is left to flush to
        (logger or Logger(component="nats")).warning("NATS connection lost while closing", error=f"{type(exc).__name__}: {exc}")
