"""07-activity-index.sql against plain Python over the same events (docs/tutorials/07-activity-index.md)."""

from __future__ import annotations

import pytest
import tutorial_truth as truth
from tutorial_store import events, query


def test_sessions_share_each_sale_by_their_activity_index() -> None:
    want = truth.activity_attribution(events())
    rows = query("07-activity-index.sql")
    assert {(r["channel"], r["campaign"]) for r in rows} == set(want)
    for r in rows:
        expected = want[(r["channel"], r["campaign"])]
        assert int(r["touches"]) == expected["touches"]
        assert float(r["conversions"]) == pytest.approx(expected["conversions"], abs=0.005)
        assert float(r["revenue"]) == pytest.approx(expected["revenue"], abs=0.005)
    linear = {(r["channel"], r["campaign"]): float(r["c_linear"]) for r in query("05-attribution.sql")}
    assert any(abs(float(r["conversions"]) - linear[(r["channel"], r["campaign"])]) > 0.1 for r in rows)  # engagement moves credit


def test_index_bounds() -> None:
    from collections import defaultdict

    sessions: dict[tuple[str, int], list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for e in events():
        sessions[(e["uid"], e["data"]["sess"]["num"])].append(e)
    indexes = [truth.activity_index(evs) for evs in sessions.values()]
    assert min(indexes) >= 1 and max(indexes) <= 4
    assert max(indexes) - min(indexes) > 1.5  # bounces and engaged sessions both occur
