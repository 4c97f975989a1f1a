"""05-attribution.sql against plain Python over the same events (docs/tutorials/05-attribution.md)."""

from __future__ import annotations

import pytest
import tutorial_truth as truth
from tutorial_store import events, query


def test_every_model_credits_every_channel_and_campaign_as_defined() -> None:
    evs = events()
    want = truth.attribution(evs)
    rows = query("05-attribution.sql")
    assert {(r["channel"], r["campaign"]) for r in rows} == set(want)
    for row in rows:
        expected = want[(row["channel"], row["campaign"])]
        for column, value in expected.items():
            assert float(row[column]) == pytest.approx(value, abs=0.005), (row["channel"], row["campaign"], column)


def test_each_model_hands_out_every_conversion_and_all_revenue_once() -> None:
    evs = events()
    paths = truth.conversion_paths(evs)
    assert len(paths) > 30  # enough buyers for the models to differ
    rows = query("05-attribution.sql")
    for model in truth.MODELS:
        assert sum(float(r[f"c_{model}"]) for r in rows) == pytest.approx(len(paths), abs=0.05)
        assert sum(float(r[f"r_{model}"]) for r in rows) == pytest.approx(sum(p[1] for p in paths), abs=0.05)
    first = {(r["channel"], r["campaign"]): float(r["c_first"]) for r in rows}
    last = {(r["channel"], r["campaign"]): float(r["c_last"]) for r in rows}
    assert first != last  # returning visitors: opening and closing channels differ
