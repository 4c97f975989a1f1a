"""Which NATS a ``band`` command talks to, and reaching it within a deadline.

``band up`` with no ``NATS_URL`` starts its own nats-server on a free port and writes
its URL to ``./.band/nats.url``; every command run in the same directory finds it there,
so a second terminal needs no setup. The order: ``--nats``, ``$NATS_URL``,
``./.band/nats.url``, ``nats://127.0.0.1:4222``. A command that falls back to the last
says so: another program's nats-server may answer there.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from nats.aio.client import Client

from .._runtime.connect import DEFAULT_URL, connect
from .._runtime.state import URL_FILE, written
from .spelling import spell
from ..errors import BandError

DEFAULT_SOURCE = "the default"


@dataclass(frozen=True)
class Target:
    """A NATS URL (comma-separated for a cluster) and where it came from, for messages."""

    url: str
    source: str


def nats_target(flag: str | None = None, env: Mapping[str, str] | None = None) -> Target:
    """The NATS to use: ``flag``, else ``NATS_URL``, else ``./.band/nats.url``, else localhost."""
    env = os.environ if env is None else env
    if flag:
        return Target(flag, "--nats")
    if env.get("NATS_URL"):
        return Target(env["NATS_URL"], "NATS_URL")
    url = written(URL_FILE)
    if url:
        return Target(url, f"./{URL_FILE}, written by band up")
    return Target(DEFAULT_URL, DEFAULT_SOURCE)


def nats_url(flag: str | None = None) -> str:
    """The URL alone (see :func:`nats_target`)."""
    return nats_target(flag).url


class Unreachable(BandError, ConnectionError):
    """No NATS answered in time; the message names the URL and what to do."""


async def reach(where: str | Target | None, name: str, timeout: float, **options: Any) -> Client:
    """A connection to ``where`` (a ``--nats`` flag, or a :class:`Target`), or
    :class:`Unreachable` after ``timeout`` s.

    nats-py retries a first connection forever; the deadline is ours. Connection errors
    are kept for the one-line message instead of being logged at each retry.
    """
    target = where if isinstance(where, Target) else nats_target(where)
    if target.source == DEFAULT_SOURCE:
        print(f"note: no --nats, no $NATS_URL and no ./{URL_FILE} here (band up writes it): trying {target.url}, "
              "the default; another program's nats-server may be the one answering", file=sys.stderr)
    errors: list[BaseException] = []

    async def remember(exc: Exception) -> None:
        errors.append(exc)

    try:
        return await asyncio.wait_for(
            connect(target.url, name=name, error_cb=remember, connect_timeout=max(1, round(timeout)), **options), timeout
        )
    except (asyncio.TimeoutError, OSError) as exc:
        errors.append(exc)
    except Exception as exc:  # nats-py's own errors (no servers, auth): the reason is the message
        errors.append(exc)
    reason = next((str(e) for e in reversed(errors) if str(e)), type(errors[-1]).__name__)
    hint = " Is band up running here?" if target.source.startswith("./") else ""
    raise Unreachable(
        f"cannot reach NATS at {target.url} (from {target.source}) within {timeout:g}s: {reason}.{hint}"
        f" Start one with '{spell('band')} up', or name another with --nats URL."
    )
