"""The ad platforms' cost report for generated traffic: what Google, Yandex and Facebook
would export as CSV, one line per day and campaign.

Clicks are the campaign's sessions that day plus the clicks that never became a session
(0-20 % more); cost is clicks times a cost per click that varies by source and day.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from collections import Counter
from typing import Any

PAID_MEDIA = ("cpc", "paid_social")
CPC = {"google": 0.60, "yandex": 0.40, "facebook": 0.30}
COLUMNS = ("date", "source", "campaign", "clicks", "cost")


def costs(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Rows ``{date, source, campaign, clicks, cost}`` for the paid sessions in ``events``."""
    sessions: Counter[tuple[str, str, str]] = Counter()
    for e in events:
        marks = e["data"]["sess"].get("marks", {})
        if e["name"] == "session" and marks.get("utm_medium") in PAID_MEDIA:
            day = dt.datetime.fromtimestamp(e["time"] / 1000, dt.UTC).date().isoformat()
            sessions[(day, marks["utm_source"], marks.get("utm_campaign", ""))] += 1
    rng = random.Random(seed * 7919 + 1)
    rows = []
    for (day, source, campaign), n in sorted(sessions.items()):
        clicks = n + int(n * rng.uniform(0, 0.2))
        cost = round(clicks * CPC.get(source, 0.5) * rng.uniform(0.8, 1.2), 2)
        rows.append({"date": day, "source": source, "campaign": campaign, "clicks": clicks, "cost": cost})
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


__all__ = [
    "COLUMNS",
    "CPC",
    "PAID_MEDIA",
    "costs",
    "to_csv",
]
