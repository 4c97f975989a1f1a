"""Send generated events through the edge as the web SDK would: one HTTP hit each, real sockets.

A visitor's events go one after another (the order a browser sends them); visitors go in
parallel. The edge stamps each hit with its own arrival time, so through the edge the
generated days collapse into the minutes the run takes; the straight-to-store mode keeps them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..errors import BandError


@dataclass
class Sent:
    """What the edge answered: hits answered 2xx, and the others with a reason each."""

    ok: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


class EdgeUnreachable(BandError, ConnectionError):
    """No edge answers at the URL."""


def hit_of(event: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The path, JSON body and headers of the HTTP hit the SDK would make for ``event``."""
    td = event["td"]
    headers = {"User-Agent": td["ua"], "X-Real-IP": td["ip"], "Referer": td["ref"]}
    return f"/{event['service']}/{event['name']}.json", event["data"], headers


async def send(
    events: list[dict[str, Any]],
    base_url: str,
    concurrency: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> Sent:
    """POST every event to ``base_url``; ``progress(done, total)`` after each hit."""
    by_visitor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_visitor[event["uid"]].append(event)
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for visitor_events in by_visitor.values():
        queue.put_nowait(visitor_events)
    sent = Sent()
    base = base_url.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=10)
    # no cookie jar: each hit carries its visitor's uid in the body, as the SDK does
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), timeout=timeout) as http:
        try:
            async with http.get(base + "/health") as resp:
                await resp.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise EdgeUnreachable(f"no edge answers at {base_url} ({exc}); start the dev stack with 'make run' or '.venv/bin/band up'") from exc

        async def visitor_worker() -> None:
            while not queue.empty():
                for event in queue.get_nowait():
                    path, body, headers = hit_of(event)
                    try:
                        async with http.post(base + path, json=body, headers=headers) as resp:
                            await resp.read()
                            if 200 <= resp.status < 300:
                                sent.ok += 1
                            else:
                                sent.fail(f"HTTP {resp.status}")
                    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                        sent.fail(type(exc).__name__)
                    if progress:
                        progress(sent.ok + sent.failed, len(events))

        await asyncio.gather(*(visitor_worker() for _ in range(max(1, concurrency))))
    return sent


__all__ = [
    "EdgeUnreachable",
    "Sent",
    "hit_of",
    "send",
]
