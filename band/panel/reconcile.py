"""The overview's reconciliation: the last hour, from the edge's answer to a queryable row.

Four counts side by side, each from where it happens: hits the edges answered 2xx and
published (each edge's ``/metrics/minutes``), events the stream received (the store
asks JetStream), events stored and failed (``bad_rows``, ``failed_events``) and flagged as bots (the
store counts its rows), and the store's lag to queryable (p50 / p99). The picture is a
row of bars, one per stage, each as wide as its count: a shorter bar is a gap, named
in red with its size, less what the store has still to write ("on the way"). ``band store check`` proves the same per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from html import escape
from typing import Any

import aiohttp
from nats.aio.client import Client

from ..errors import RPCError
from ..runtime import RPC

MINUTES = 60
TIMEOUT_S = 5.0


async def _edge_minutes(http: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    try:
        async with http.get(url + "/metrics/minutes", timeout=aiohttp.ClientTimeout(total=1.5)) as resp:
            if resp.status != 200:
                return None
            answer: dict[str, Any] = await resp.json(content_type=None)
            return answer
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None


async def read(nc: Client, http: aiohttp.ClientSession, edge_urls: Sequence[str], store_service: str) -> dict[str, Any]:
    """The last hour's numbers; a part that does not answer is ``None``, with a note saying which."""
    edges = await asyncio.gather(*(_edge_minutes(http, url) for url in edge_urls))
    notes = [f"edge {url} did not answer /metrics/minutes" for url, e in zip(edge_urls, edges, strict=False) if e is None]
    answered = [e for e in edges if e is not None]
    out: dict[str, Any] = {
        "minutes": MINUTES,
        "accepted": sum(int(e.get("answered", 0)) for e in answered) if answered else None,
        "published": sum(int(e.get("published", 0)) for e in answered) if answered else None,
        "in_stream": None, "stored": None, "failed": None, "flagged": None, "pending": None, "lag": {"p50_ms": None, "p99_ms": None},
    }
    try:
        counts = await RPC(lambda: nc).request(store_service, "counts", timeout__=TIMEOUT_S, minutes=MINUTES)
    except (TimeoutError, RPCError) as exc:
        notes.append(f"the store did not answer ({getattr(exc, 'message', exc)}): start it with 'band store'")
    else:
        for name in ("in_stream", "stored", "failed", "flagged", "pending", "lag"):
            out[name] = counts.get(name)
    out["notes"] = notes
    out["picture"] = picture(out)
    return out


def picture(n: dict[str, Any]) -> str:
    """The stages as bars scaled to the largest count; a gap to the stage before it in red."""
    stages = [("accepted at the edge", n.get("accepted"), "#4e79a7"), ("in the stream", n.get("in_stream"), "#76b7b2"),
              ("stored", n.get("stored"), "#59a14f")]
    failed, flagged = n.get("failed") or 0, n.get("flagged") or 0
    top = max([v for _, v, _ in stages if v is not None] + [1])
    width, left, bar_h, gap = 560, 170, 26, 12
    height = len(stages) * (bar_h + gap) + 8
    parts = [f'<svg class="reconcile" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="events of the last hour at each stage">']
    previous: int | None = None
    for i, (label, value, fill) in enumerate(stages):
        y = 4 + i * (bar_h + gap)
        parts.append(f'<text x="{left - 8}" y="{y + bar_h * 0.68:.0f}" text-anchor="end" font-size="13" fill="#555">{escape(label)}</text>')
        if value is None:
            parts.append(f'<text x="{left}" y="{y + bar_h * 0.68:.0f}" font-size="13" fill="#999">unknown</text>')
            continue
        scale = (width - left - 110) / top
        short = previous - value - (failed if label == "stored" else 0) if previous is not None else 0
        coming = min(short, n.get("pending") or 0) if label == "stored" and short > 0 else 0
        span = 0.0
        for count, colour, opacity, title in ((value, fill, 1.0, ""), (failed if label == "stored" else 0, "#f28e2b", 1.0, "failed (bad_rows, failed_events)"),
                                              (coming, fill, 0.3, "on the way: the store has still to write them")):
            if count or not span:
                parts.append(f'<rect x="{left + span:.1f}" y="{y}" width="{max(count * scale, 1):.1f}" height="{bar_h}" rx="3" '
                             f'fill="{colour}" fill-opacity="{opacity}">' + (f"<title>{count:,} {title}</title>" if title else "") + "</rect>")
                span += count * scale
        text = f"{value:,}" + (f" + {failed:,} failed" if label == "stored" and failed else "")
        unsent = value - (n.get("published") or 0) if label == "accepted at the edge" and n.get("published") is not None else 0
        if unsent > 0:
            text += f" ({unsent:,} not sent on)"
        if label == "stored" and flagged:
            text += f" ({flagged:,} bots)"
        if coming:
            text += f" · {coming:,} on the way"
        if short > coming:
            text += f" · −{short - coming:,}"
        parts.append(f'<text x="{left + span + 6:.1f}" y="{y + bar_h * 0.68:.0f}" font-size="13" '
                     f'fill="{"#e15759" if short > coming else "#333"}">{escape(text)}</text>')
        previous = value if label != "accepted at the edge" else (n.get("published") if n.get("published") is not None else value)
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["MINUTES", "picture", "read"]
