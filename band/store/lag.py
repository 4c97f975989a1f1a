"""Lag to queryable: how long an event took from the stream into a committed insert.

Measured per event as the insert's commit time minus the event's stream timestamp
(JetStream's, from the message's reply subject, so clocks of the edge do not enter).
Kept per minute for the last hour in fixed log-spaced buckets: bounded memory whatever
the rate, and a quantile is a bucket's upper bound (within 10 %). In memory: a
restarted store starts over.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable

KEEP_MINUTES = 60
BOUNDS_MS: tuple[int, ...] = tuple(sorted({max(1, round(1.1 ** i)) for i in range(0, 160)}))  # 1 ms .. ~1 day


class LagClock:
    """Per-minute histograms of lag, in ms, for the last :data:`KEEP_MINUTES` minutes."""

    def __init__(self) -> None:
        self._minutes: OrderedDict[int, list[int]] = OrderedDict()

    def observe(self, stream_ms: Iterable[int], now_ms: int | None = None) -> None:
        """Events whose stream timestamps are ``stream_ms`` became queryable at ``now_ms``."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        minute = now // 60_000
        counts = self._minutes.get(minute)
        if counts is None:
            counts = self._minutes[minute] = [0] * (len(BOUNDS_MS) + 1)
            while len(self._minutes) > KEEP_MINUTES:
                self._minutes.popitem(last=False)
        for ms in stream_ms:
            counts[bisect_left(BOUNDS_MS, now - ms)] += 1

    def quantiles(self, minutes: int = KEEP_MINUTES, now_ms: int | None = None) -> dict[str, float | int | None]:
        """``{"events", "p50_ms", "p99_ms"}`` over the last ``minutes`` (None when nothing was written)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        first = now // 60_000 - minutes + 1
        total = [0] * (len(BOUNDS_MS) + 1)
        for minute, counts in self._minutes.items():
            if minute >= first:
                total = [a + b for a, b in zip(total, counts, strict=False)]
        events = sum(total)
        return {"events": events, "p50_ms": _quantile(total, events, 0.50), "p99_ms": _quantile(total, events, 0.99)}


def _quantile(counts: list[int], events: int, q: float) -> float | None:
    if not events:
        return None
    running = 0
    for i, count in enumerate(counts):
        running += count
        if running >= q * events:
            return float(BOUNDS_MS[i]) if i < len(BOUNDS_MS) else float(BOUNDS_MS[-1])
    return None


__all__ = ["LagClock"]
