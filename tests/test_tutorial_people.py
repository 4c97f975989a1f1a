"""Recipes by person and by cookie on the demo's events: the people who looked on a phone and
bought on a laptop count once by person, and the phone's campaign gets its share of the sale;
checked against plain Python over the same events (tutorial_truth.persons joins the uids)."""

from __future__ import annotations

import json

import pytest
import tutorial_truth as truth
from test_tutorial_history import as_tuples, expected
from tutorial_store import CLI, NEW_VS_RETURNING, START, answers, cross_device_buyer, events, query_by

CAMPAIGNS = {"google / cpc", "yandex / cpc", "facebook / paid_social", "newsletter / email"}


def test_the_demo_has_people_on_two_devices_and_the_truth_joins_them() -> None:
    evs = events()
    of = truth.persons(evs)
    joined = {p for u, p in of.items() if u != p}
    assert len(joined) >= 20  # one person per 20 visitors uses a phone, then a laptop
    phone, laptop, _ = cross_device_buyer()
    assert of[laptop] == of[phone] == phone  # the older uid's id wins
    assert len(set(of.values())) == len(of) - len(joined)


def test_attribution_by_person_credits_the_phones_campaigns_by_cookie_it_does_not() -> None:
    evs = events()
    for by in truth.BY:
        want = truth.attribution(evs, by=by)
        rows = query_by("05-attribution.sql", by)
        assert {r["counted_by"] for r in rows} == {by}
        assert {(r["channel"], r["campaign"]) for r in rows} == set(want)
        for row in rows:
            for column, value in want[(row["channel"], row["campaign"])].items():
                assert float(row[column]) == pytest.approx(value, abs=0.005), (by, row["channel"], row["campaign"], column)

    def total(by: str, column: str, channels: set[str]) -> float:
        return sum(float(r[column]) for r in query_by("05-attribution.sql", by) if r["channel"] in channels)

    # the laptop's direct visit closes the sale either way; by person the phone's campaign opened it
    for column in ("c_first", "c_last_non_direct", "c_linear", "c_position", "c_time_decay"):
        assert total("person", column, CAMPAIGNS) > total("cookie", column, CAMPAIGNS) + 10, column
    assert total("person", "c_last", CAMPAIGNS) == pytest.approx(total("cookie", "c_last", CAMPAIGNS))
    # band sql with by=cookie, as the recipe's first lines say
    cli = json.loads(answers(f"{CLI} by=cookie"))
    assert {r["counted_by"] for r in cli} == {"cookie"} and len(cli) == len(query_by("05-attribution.sql", "cookie"))


def test_funnels_by_person_and_by_cookie() -> None:
    evs = events()
    for by in truth.BY:
        by_day, by_channel = truth.funnels(evs, by=by)
        day = query_by("08-funnel-by-day.sql", by)
        assert {r["counted_by"] for r in day} == {by}
        assert {r["date"]: [int(r[c]) for c in ("visits", "product", "checkout", "purchase")] for r in day} == by_day
        source = query_by("08-funnel-by-source.sql", by)
        assert {r["channel"]: [int(r[c]) for c in ("visits", "product", "checkout", "purchase")] for r in source} == by_channel
    person, cookie = truth.funnels(evs, "person")[0], truth.funnels(evs, "cookie")[0]
    assert sum(v[0] for v in person.values()) < sum(v[0] for v in cookie.values())  # a phone and a laptop the same day: one attempt


def test_new_vs_returning_by_person_and_by_cookie() -> None:
    evs = events()
    for by in truth.BY:
        want = truth.new_vs_returning(evs, START.isoformat(), by)
        rows = query_by(NEW_VS_RETURNING, by)
        assert {r["date"]: (int(r["new_visitors"]), int(r["returning_visitors"])) for r in rows} == want
        assert {r["counted_by"] for r in rows} == {by}
    person = truth.new_vs_returning(evs, START.isoformat(), "person")
    cookie = truth.new_vs_returning(evs, START.isoformat(), "cookie")
    # a laptop first seen after its phone is a new cookie but a returning person
    assert sum(n for n, _ in person.values()) < sum(n for n, _ in cookie.values())
    assert sum(r for _, r in person.values()) > sum(r for _, r in cookie.values())


def test_segments_give_every_device_its_persons_segment() -> None:
    evs = events()
    for by in truth.BY:
        want = truth.segments(evs, by)
        rows = query_by("10-segments.sql", by)
        got = {r["uid"]: (r["person_id"], r["segment"], r["rfm"], float(r["revenue"]), r["counted_by"]) for r in rows}
        assert got == {u: (w["person_id"], w["segment"], w["rfm"], w["revenue"], by) for u, w in want.items()}
    phone, laptop, _ = cross_device_buyer()
    person = truth.segments(evs, "person")
    cookie = truth.segments(evs, "cookie")
    assert person[phone]["segment"] == person[laptop]["segment"] and person[phone]["revenue"] > 0
    assert cookie[phone]["revenue"] == 0  # by cookie the phone never bought


def test_history_of_a_person_has_both_devices() -> None:
    evs = events()
    phone, laptop, _ = cross_device_buyer()
    by_person = answers("history person")
    assert by_person["counted_by"] == "person" and by_person["uids"] == [phone, laptop]
    mine = truth.history(evs, phone)
    want = [(e["uid"], *expected(e["uid"], [e])[0]) for e in mine]
    assert [(e["uid"], *t) for e, t in zip(by_person["events"], as_tuples(by_person["events"]), strict=True)] == want
    assert {e["name"] for e in by_person["events"]} >= {"session", "identify", "purchase"}
    assert answers("history person user_id") == by_person  # the user id finds the same person
    by_cookie = answers("history person by cookie")
    assert by_cookie["uids"] == [phone] and "purchase" not in {e["name"] for e in by_cookie["events"]}
    assert as_tuples(by_cookie["events"]) == expected(phone)
