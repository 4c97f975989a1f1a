"""Lag to queryable: p50 / p99 over the last hour from bounded per-minute buckets."""

from __future__ import annotations

from band.store.lag import LagClock


def test_quantiles_are_bucket_bounds_within_ten_percent_and_old_minutes_drop_out() -> None:
    clock = LagClock()
    now = 1_700_000_000_000
    clock.observe([now - 100] * 98 + [now - 5_000] * 2, now_ms=now)  # 98 at 100 ms, 2 at 5 s
    q = clock.quantiles(now_ms=now)
    p50, p99 = q["p50_ms"], q["p99_ms"]
    assert q["events"] == 100 and p50 is not None and p99 is not None
    assert 100 <= p50 <= 110 and 5_000 <= p99 <= 5_500, q
    assert clock.quantiles(now_ms=now + 3_600_000) == {"events": 0, "p50_ms": None, "p99_ms": None}
