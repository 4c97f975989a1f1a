"""08-funnel-by-day.sql and 08-funnel-by-source.sql (windowFunnel) against plain Python (docs/tutorials/08-funnels.md)."""

from __future__ import annotations

import pytest
import tutorial_truth as truth
from tutorial_store import DAYS, events, query


def check(rows: list[dict], key: str, want: dict[str, list[int]]) -> None:  # type: ignore[type-arg]
    assert {r[key] for r in rows} == set(want)
    for r in rows:
        visits, product, checkout, purchase = want[r[key]]
        assert [int(r["visits"]), int(r["product"]), int(r["checkout"]), int(r["purchase"])] == [visits, product, checkout, purchase], r[key]
        assert float(r["visit_to_product"]) == pytest.approx(product / visits, abs=0.0005)
        assert (r["product_to_checkout"] is None) == (product == 0)
        if checkout:
            assert float(r["checkout_to_purchase"]) == pytest.approx(purchase / checkout, abs=0.0005)
        else:
            assert r["checkout_to_purchase"] is None


def test_funnel_by_day_and_by_source() -> None:
    by_day, by_channel = truth.funnels(events())
    assert len(by_day) == DAYS
    day_rows = query("08-funnel-by-day.sql")
    check(day_rows, "date", by_day)
    check(query("08-funnel-by-source.sql"), "channel", by_channel)
    totals = [sum(int(r[c]) for r in day_rows) for c in ("visits", "product", "checkout", "purchase")]
    assert totals[0] > totals[1] > totals[2] > totals[3] > 0  # a funnel narrows
    # a purchase counts only after a checkout page the same day, and every demo buyer had one
    assert totals[3] == len(truth.conversion_paths(events()))
