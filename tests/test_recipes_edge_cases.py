"""The recipes' SQL on small hand-made data sets that the demo generator never makes.

The tutorial tests compare each recipe with plain Python over the demo's events; these
add the cases an independent data set showed: pages whose path merely contains a step's
word, events sharing a millisecond, and visitors just past a recency threshold. Each runs
the recipe file unchanged in a fresh chDB (a subprocess: chDB keeps one data directory per
process) over a table holding only the columns the recipe reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "recipes"
DAY_MS = 86_400_000
T0 = 1_785_000_000_000  # a fixed instant (2026-07-25), well inside a UTC day: 10:40

_RUN = r"""
import json, sys, chdb
rows, sql, params = json.loads(sys.stdin.read())
q = chdb.query
script = '''
CREATE DATABASE stats;
CREATE TABLE stats.events (uid UInt64, bot LowCardinality(String), name String, timestamp UInt64, date Date, page_url String,
    sess_type String, sess_marks_utm_source String, sess_marks_utm_medium String,
    data_extra Nested(key String, value String)) ENGINE = MergeTree ORDER BY uid;
CREATE VIEW stats.events_people AS SELECT *, uid AS person_id FROM stats.events;
'''
from chdb.session import Session
s = Session()
for stmt in script.split(';'):
    if stmt.strip():
        s.query(stmt)
s.query('INSERT INTO stats.events FORMAT JSONEachRow ' + '\n'.join(json.dumps(r) for r in rows))
print(s.query(sql, 'JSONEachRow', params=params).bytes().decode())
"""


def run(recipe: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``examples/recipes/<recipe>`` over ``rows`` in a fresh chDB, by cookie (no identities here:
    ``events_people`` gives every uid as its own person)."""
    sql = (RECIPES / recipe).read_text()
    out = subprocess.run([sys.executable, "-c", _RUN], input=json.dumps([rows, sql, {"by": "cookie"}]), capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def event(uid: int, name: str, ms: int, url: str = "", source: str = "", medium: str = "", sess_type: str = "direct",
          revenue: float | None = None) -> dict[str, Any]:
    import datetime as dt

    extra = {"data_extra.key": ["revenue"], "data_extra.value": [str(revenue)]} if revenue is not None else {}
    return {"uid": uid, "name": name, "timestamp": ms, "page_url": url, "sess_type": sess_type,
            "date": dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date().isoformat(),
            "sess_marks_utm_source": source, "sess_marks_utm_medium": medium, **extra}


def test_funnel_steps_match_the_path_not_a_substring_and_ties_follow_step_order() -> None:
    rows = [
        # 1: session, product, then a help page about the checkout: reaches step 2, not 3
        event(1, "session", T0), event(1, "page", T0 + 1, "https://shop.example/product/boots"),
        event(1, "page", T0 + 2, "https://shop.example/help/checkout-faq"),
        event(1, "page", T0 + 3, "https://shop.example/blog/why-product/"),
        # 2: the whole funnel, the landing product page in the session's millisecond
        event(2, "page", T0, "https://shop.example/product/scarf?utm_source=x"),
        event(2, "session", T0, source="google", medium="cpc"),
        event(2, "page", T0 + 5, "https://shop.example/checkout?step=2"),
        event(2, "purchase", T0 + 9, revenue=10),
        # 3: a product path elsewhere in the URL does not count
        event(3, "session", T0), event(3, "page", T0 + 1, "https://shop.example/search?q=/product/boots"),
    ]
    by_day = run("08-funnel-by-day.sql", rows)
    assert [(r["visits"], r["product"], r["checkout"], r["purchase"]) for r in by_day] == [(3, 2, 1, 1)]
    by_source = {r["channel"]: (r["visits"], r["product"], r["checkout"], r["purchase"]) for r in run("08-funnel-by-source.sql", rows)}
    # visitor 2's page at the session's millisecond carries no marks: the session's channel is the source
    assert by_source == {"direct": (2, 1, 0, 0), "google / cpc": (1, 1, 1, 1)}


def test_segment_recency_reads_the_exact_age_not_the_rounded_one() -> None:
    now = T0 + 30 * DAY_MS
    minute = 60_000
    rows = [event(9, "session", now)]  # "now": the newest event
    # 2 days and 3 minutes old: rounds to 2.0 days, and is past the R3 threshold
    rows.append(event(1, "session", now - 2 * DAY_MS - 3 * minute))
    # 7 days and 5 minutes: rounds to 7.0, past the R2 threshold
    rows.append(event(2, "session", now - 7 * DAY_MS - 5 * minute))
    # exactly 2 days: R3
    rows.append(event(3, "session", now - 2 * DAY_MS))
    got = {r["uid"]: (r["r"], r["days_since"]) for r in run("10-segments.sql", rows)}
    assert got["1"][0] == 2 and float(got["1"][1]) == 2.0
    assert got["2"][0] == 1 and float(got["2"][1]) == 7.0
    assert got["3"][0] == 3
