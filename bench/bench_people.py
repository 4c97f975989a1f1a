"""Attribution by person beside attribution by cookie, over the same events, in one run.

    .venv/bin/python bench/bench_people.py [--events 1000000] [--persons 100000] [--repeat 3]

A fresh chDB store made by band's own migration (the stock tables and the ``events_people``
view) gets ``--events`` events from ClickHouse's ``numbers()`` and ``rand()``: each person has
two cookies (uids), sessions carry a channel and campaign, one event in a hundred is a purchase
with revenue; ``person_of_uid`` joins every person's second uid to the first. Then
examples/recipes/05-attribution.sql (all six models) runs, read-only, best of ``--repeat``:

- the baseline: by cookie over ``stats.events`` alone (the recipe with no person in it);
- by cookie through ``stats.events_people`` (``by=cookie``);
- by person through ``stats.events_people`` (``by=person``).

Printed: each one's time as a ratio to the baseline, and the buyers each counted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from band.store.backend import ChdbBackend
from band.store.config import load
from band.store.migrate import ensure

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "recipes" / "05-attribution.sql"
START_MS = 1_793_491_200_000  # 2026-11-01 UTC
SPAN_MS = 14 * 86_400_000
FIRST_UID = 7_000_000_000_000_000_000  # far from any real uid


def fill(backend: ChdbBackend, events: int, persons: int) -> None:
    """``events`` events over ``2 * persons`` uids, and the graph that joins them in pairs."""
    uids = 2 * persons
    backend.command(f"""
        INSERT INTO stats.events (id, uid, name, service, timestamp, dateTime, date, sess_type,
                                  sess_marks_utm_source, sess_marks_utm_medium, sess_marks_utm_campaign,
                                  `data_extra.key`, `data_extra.value`)
        SELECT number AS id, {FIRST_UID} + rand(1) % {uids} AS uid,
               multiIf(rand(2) % 100 = 0, 'purchase', rand(2) % 100 < 25, 'session', 'page') AS name, 'track' AS service,
               {START_MS} + rand64(3) % {SPAN_MS} AS timestamp, toDateTime(intDiv(timestamp, 1000), 'UTC') AS dateTime,
               toDate(dateTime) AS date,
               ['direct', 'organic', 'social', 'campaign'][1 + rand(4) % 4] AS sess_type,
               if(sess_type = 'campaign', ['google', 'yandex', 'facebook'][1 + rand(5) % 3], '') AS sess_marks_utm_source,
               if(sess_type = 'campaign', 'cpc', '') AS sess_marks_utm_medium,
               if(sess_type = 'campaign', ['winter_sale', 'brand', 'retargeting'][1 + rand(6) % 3], '') AS sess_marks_utm_campaign,
               if(name = 'purchase', ['revenue'], []) AS `data_extra.key`,
               if(name = 'purchase', [toString(19 + rand(7) % 230)], []) AS `data_extra.value`
        FROM numbers({events})""")
    # the second half of the uids belongs to the person of the first half's uid
    backend.command(f"""
        INSERT INTO stats.person_of_uid (uid, person_id, stream_seq)
        SELECT {FIRST_UID} + {persons} + number, {FIRST_UID} + number, number + 1 FROM numbers({persons})""")


def timed(backend: ChdbBackend, sql: str, params: dict[str, str], repeat: int) -> tuple[float, int]:
    """Best seconds of ``repeat`` runs, and the conversions the answer credits (c_first summed)."""
    best, conversions = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = backend.select(sql, params, readonly=True)["rows"]
        best = min(best, time.perf_counter() - started)
        conversions = round(sum(float(r["c_first"]) for r in rows))
    return best, conversions


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--persons", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    backend = ChdbBackend(Path(tempfile.mkdtemp(prefix="bench-people-")) / "store")
    try:
        ensure(backend, load())
        started = time.perf_counter()
        fill(backend, args.events, args.persons)
        print(f"{args.events:,} events over {2 * args.persons:,} uids of {args.persons:,} persons made in "
              f"{time.perf_counter() - started:.1f} s")
        recipe = RECIPE.read_text()
        before = recipe.replace("FROM stats.events_people", "FROM stats.events").replace("person_id", "uid")  # no person anywhere
        base, base_n = timed(backend, before, {"by": "cookie"}, args.repeat)
        print(f"{'query':44} {'ratio':>7} {'buyers':>9}")
        print(f"{'by cookie over stats.events (baseline)':44} {1.0:7.2f} {base_n:9,}")
        for label, by in (("by cookie through stats.events_people", "cookie"), ("by person through stats.events_people", "person")):
            took, n = timed(backend, recipe, {"by": by}, args.repeat)
            print(f"{label:44} {took / base:7.2f} {n:9,}")
    finally:
        backend.close()


if __name__ == "__main__":
    main()
