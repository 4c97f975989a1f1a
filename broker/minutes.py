"""Hits answered 2xx and events published, per minute and key, for the last hour.

What the edge accepted is the first column of the reconciliation (the panel's
overview, docs/storage.md): set against what the stream holds and the store wrote, per
minute and ``<service>/<name>``. Not Prometheus counters with a ``key`` label: every
label set lives for the life of the process and of the scraping server, and keys are
as many as users make. Here memory is bounded: the last :data:`KEEP_MINUTES` minutes,
at most :data:`MAX_KEYS` keys a minute (the rest counted under :data:`OTHER`). The
edge serves them as JSON on ``/metrics/minutes``; Prometheus gets the totals
(``band_edge_events_total{outcome}``).

Answered without being published (a 2xx, ``published`` false) are the events the edge
chose not to send on, such as bots dropped by configuration: the stream never has them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

KEEP_MINUTES = 60
MAX_KEYS = 1000
OTHER = "(other keys)"


class MinuteCounts:
    """``[answered 2xx, published]`` per minute and key; the hot path bumps two ints."""

    def __init__(self) -> None:
        self._minutes: OrderedDict[int, dict[str, list[int]]] = OrderedDict()
        self.answered = 0  # totals since start, for Prometheus
        self.published = 0

    def count(self, key: str, answered: bool, published: bool, now: float | None = None) -> None:
        if not answered and not published:
            return
        minute = int((time.time() if now is None else now) // 60) * 60
        keys = self._minutes.get(minute)
        if keys is None:
            keys = self._minutes[minute] = {}
            while len(self._minutes) > KEEP_MINUTES:
                self._minutes.popitem(last=False)
        row = keys.get(key)
        if row is None:
            row = keys.setdefault(key if len(keys) < MAX_KEYS else OTHER, [0, 0])
        if answered:
            row[0] += 1
            self.answered += 1
        if published:
            row[1] += 1
            self.published += 1

    def snapshot(self, minutes: int = KEEP_MINUTES, now: float | None = None) -> dict[str, Any]:
        """The last ``minutes`` whole minutes (this one included), oldest first:
        ``{"minutes": [{"minute": unix seconds, "key", "answered", "published"}]}``."""
        first = int((time.time() if now is None else now) // 60) * 60 - (minutes - 1) * 60
        rows = [{"minute": minute, "key": key, "answered": a, "published": p}
                for minute, keys in self._minutes.items() if minute >= first
                for key, (a, p) in sorted(keys.items())]
        return {"minutes": rows, "answered": sum(r["answered"] for r in rows), "published": sum(r["published"] for r in rows)}


__all__ = ["KEEP_MINUTES", "MAX_KEYS", "OTHER", "MinuteCounts"]
