"""The edge's per-minute, per-key counts stay bounded however many keys and minutes come."""

from __future__ import annotations

from broker.minutes import KEEP_MINUTES, MAX_KEYS, OTHER, MinuteCounts


def test_keys_beyond_the_cap_fold_into_one_row_and_old_minutes_go() -> None:
    counts = MinuteCounts()
    t0 = 1_700_000_000.0 - 1_700_000_000.0 % 60
    for k in range(MAX_KEYS + 500):
        counts.count(f"svc/name{k}", answered=True, published=k % 2 == 0, now=t0)
    counts.count("svc/name0", answered=False, published=False, now=t0)  # a refused hit counts nowhere
    snap = counts.snapshot(now=t0)
    assert len(snap["minutes"]) == MAX_KEYS + 1
    other = next(r for r in snap["minutes"] if r["key"] == OTHER)
    assert other["answered"] == 500 and snap["answered"] == MAX_KEYS + 500 and snap["published"] == (MAX_KEYS + 500) // 2
    for m in range(1, KEEP_MINUTES + 5):  # an hour and more later
        counts.count("svc/late", answered=True, published=True, now=t0 + 60 * m)
    later = counts.snapshot(now=t0 + 60 * (KEEP_MINUTES + 4))
    assert {r["key"] for r in later["minutes"]} == {"svc/late"} and later["answered"] == KEEP_MINUTES
    assert len(counts._minutes) == KEEP_MINUTES
