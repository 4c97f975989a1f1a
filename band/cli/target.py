"""Which NATS a ``band`` command talks to, and reaching it within a deadline.

``band up`` with no ``NATS_URL`` starts its own nats-server on a free port and writes
its URL to ``./.band/nats.url``; every command run in the same directory finds it there,
so a second terminal needs no setup. The order: ``--nats``, ``$NATS_URL``,
``./.band/nats.url``, ``nats://127.0.0.1:4222``. A command that falls back to the last
says so: another program's nats-server may answer there. (Where the URL comes from is
:mod:`band._runtime.state`; this module reaches it.)
"""
from __future__ import annotations

import asyncio
import sys
from typing import Any

from nats.aio.client import Client

from .._runtime.connect import connect
from .._runtime.state import DEFAULT_SOURCE, URL_FILE, Target, nats_target, nats_url
from ..errors import BandError
from .spelling import spell


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
    except (TimeoutError, OSError) as exc:
        errors.append(exc)
    except Exception as exc:  # noqa: BLE001 - nats-py's own errors (no servers, auth): the reason is the message
        errors.append(exc)
    reason = next((str(e) for e in reversed(errors) if str(e)), type(errors[-1]).__name__)
    hint = " Is band up running here?" if target.source.startswith("./") else ""
    raise Unreachable(
        f"cannot reach NATS at {target.url} (from {target.source}) within {timeout:g}s: {reason}.{hint}"
        f" Start one with '{spell('band')} up', or name another with --nats URL."
    )


__all__ = ["DEFAULT_SOURCE", "Target", "Unreachable", "nats_target", "nats_url", "reach"]
