"""Two devices, anonymous visits on both, a login on each: the recipes by person and by cookie
over a hand-made data set, checked against plain Python (tutorial_truth) and against the
numbers the definitions give by hand.

The phone arrives from a Google ad (anonymous), comes back direct and logs in as user-7; the
laptop arrives from a search (anonymous), comes back direct, logs in as user-7 and buys. The
events go into a fresh store with ``band store import --direct``; the identity graph the
contract defines for them (the laptop's uid resolves to the phone's person, the older uid) is
written into ``person_of_uid`` and ``identities`` when the store has not made it itself. Then
each recipe runs read-only in a subprocess (chDB keeps one data directory per process).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tutorial_truth as truth

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "examples" / "recipes"
DAY0 = int(dt.datetime(2026, 11, 2, tzinfo=dt.UTC).timestamp() * 1000)
HOUR = 3_600_000
PHONE, LAPTOP = "7340000000000000001", "7340000000000000002"
GOOGLE = {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "winter_sale"}


def ev(uid: str, name: str, ms: int, num: int, kind: str = "direct", path: str = "/", marks: dict[str, str] | None = None,
       user_id: str = "", custom: dict[str, Any] | None = None) -> dict[str, Any]:
    """An event as band demo writes it (the shape the store imports and tutorial_truth reads)."""
    data: dict[str, Any] = {"service": "track", "name": name, "uid": uid,
                            "page": {"url": f"https://shop.example.com{path}", "title": "", "domain": "shop.example.com"},
                            "sess": {"type": kind, "num": num, "marks": marks or {}, "start": ms, "pageNum": 1, "eventNum": 0},
                            "user": {"id": user_id} if user_id else {}, "lib": {"id": "web-sdk"}}
    if custom:
        data["data"] = custom
    return {"key": f"in.gen.track.{name}", "service": "track", "name": name, "channel": "http", "projectId": 0, "uid": uid,
            "td": {"ip": "5.1.2.3", "ua": "Mozilla/5.0", "ref": "", "host": "shop.example.com"}, "data": data, "id": "", "time": ms}


def scenario() -> list[dict[str, Any]]:
    events = [
        ev(PHONE, "session", DAY0 + 10 * HOUR, 1, "campaign", "/product/boots", GOOGLE),
        ev(PHONE, "page", DAY0 + 10 * HOUR + 5, 1, "campaign", "/product/boots", GOOGLE),
        ev(LAPTOP, "session", DAY0 + 86_400_000 + 9 * HOUR, 1, "organic", "/"),
        ev(LAPTOP, "page", DAY0 + 86_400_000 + 9 * HOUR + 5, 1, "organic", "/"),
        ev(PHONE, "session", DAY0 + 86_400_000 + 12 * HOUR, 2),
        ev(PHONE, "identify", DAY0 + 86_400_000 + 12 * HOUR + 9, 2, user_id="user-7", custom={"user_id": "user-7"}),
        ev(LAPTOP, "session", DAY0 + 2 * 86_400_000 + 15 * HOUR, 2),
        ev(LAPTOP, "identify", DAY0 + 2 * 86_400_000 + 15 * HOUR + 9, 2, user_id="user-7", custom={"user_id": "user-7"}),
        ev(LAPTOP, "page", DAY0 + 2 * 86_400_000 + 15 * HOUR + 20, 2, path="/product/boots", user_id="user-7"),
        ev(LAPTOP, "page", DAY0 + 2 * 86_400_000 + 15 * HOUR + 40, 2, path="/checkout", user_id="user-7"),
        ev(LAPTOP, "purchase", DAY0 + 2 * 86_400_000 + 15 * HOUR + 60, 2, path="/checkout", user_id="user-7",
           custom={"revenue": 100, "currency": "EUR"}),
    ]
    for i, e in enumerate(events):
        e["id"] = str((e["time"] << 22) | i)
    return events


_ASK = r"""
import json, sys
from pathlib import Path
from band.store.backend import ChdbBackend
folder, graph, asks = json.loads(sys.stdin.read())
b = ChdbBackend(Path(folder))
out = {"made": b.select("SELECT count() AS n FROM stats.person_of_uid")["rows"][0]["n"]}
if int(out["made"]) == 0:  # the store did not make the graph: write the one the contract defines
    b.insert("stats", "person_of_uid", "\n".join(json.dumps(r) for r in graph["person_of_uid"]).encode())
    b.insert("stats", "identities", "\n".join(json.dumps(r) for r in graph["identities"]).encode())
for key, sql, params in asks:
    try:
        out[key] = b.select(sql, params, readonly=True)["rows"]
    except Exception as exc:
        out[key] = str(exc)
b.close()
print(json.dumps(out))
"""


def graph(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The identity contract's rows for these events: each uid's person, each identifier's."""
    of = truth.persons(events)
    at = "2026-11-02 00:00:00.000"
    ids = [{"identifier": f"uid:{u}", "kind": "uid", "person_id": int(p), "first_seen": at, "last_seen": at, "stream_seq": 1}
           for u, p in of.items()]
    ids += [{"identifier": "user:user-7", "kind": "user", "person_id": int(of[PHONE]), "first_seen": at, "last_seen": at, "stream_seq": 1}]
    return {"person_of_uid": [{"uid": int(u), "person_id": int(p), "stream_seq": 1} for u, p in of.items() if u != p], "identities": ids}


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("chdb")
    folder = tmp_path_factory.mktemp("people") / "store"
    events = scenario()
    lines = "".join(json.dumps(e) + "\n" for e in events)
    done = subprocess.run([sys.executable, "-m", "band", "store", "import", "-", "--direct", str(folder)], input=lines,
                          capture_output=True, text=True, timeout=300, cwd=folder.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    asks = []
    for by in truth.BY:
        for name in ("05-attribution.sql", "08-funnel-by-day.sql", "10-segments.sql"):
            asks.append((f"{name} {by}", (RECIPES / name).read_text(), {"by": by}))
        asks.append((f"new_vs_returning {by}", (ROOT / "examples" / "queries" / "new_vs_returning.sql").read_text(),
                     {"by": by, "since": "2026-11-01"}))
        asks.append((f"history {by}", (RECIPES / "04-user-history.sql").read_text(), {"by": by, "uid": PHONE}))
        asks.append((f"uids {by}", (RECIPES / "04-uids-of-user.sql").read_text(), {"by": by, "user_id": "user-7"}))
    asks.append(("bad by", (RECIPES / "05-attribution.sql").read_text(), {"by": "persons"}))
    run = subprocess.run([sys.executable, "-c", _ASK], input=json.dumps([str(folder), graph(events), asks]),
                         capture_output=True, text=True, timeout=300, cwd=folder.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout))


def credits(rows: list[dict[str, Any]], column: str) -> dict[str, float]:
    return {r["channel"]: round(float(r[column]), 2) for r in rows if float(r[column])}


def test_attribution_credits_the_phones_campaign_by_person_and_not_by_cookie(answers: dict[str, Any]) -> None:
    person, cookie = answers["05-attribution.sql person"], answers["05-attribution.sql cookie"]
    # by person the path is: google / cpc (phone), direct (phone, login), organic (laptop), direct (laptop, purchase)
    assert credits(person, "c_first") == {"google / cpc": 1.0}
    assert credits(person, "c_last") == {"direct": 1.0}
    assert credits(person, "c_last_non_direct") == {"organic": 1.0}
    assert credits(person, "c_linear") == {"google / cpc": 0.25, "direct": 0.5, "organic": 0.25}
    assert credits(person, "c_position") == {"google / cpc": 0.4, "direct": 0.5, "organic": 0.1}
    assert credits(person, "r_linear") == {"google / cpc": 25.0, "direct": 50.0, "organic": 25.0}
    # by cookie the laptop bought alone: the ad never counts
    assert credits(cookie, "c_first") == {"organic": 1.0}
    assert credits(cookie, "c_linear") == {"organic": 0.5, "direct": 0.5}
    assert all(r["channel"] != "google / cpc" or not any(float(r[c]) for c in r if c.startswith(("c_", "r_"))) for r in cookie)
    for by, rows in (("person", person), ("cookie", cookie)):
        assert {r["counted_by"] for r in rows} == {by}
        want = truth.attribution(scenario(), by=by)
        for r in rows:
            for column, value in want[(r["channel"], r["campaign"])].items():
                assert float(r[column]) == pytest.approx(value, abs=0.005), (by, r["channel"], column)
        assert sum(float(r["c_first"]) for r in rows) == 1  # one buyer either way


def test_the_graph_used_is_the_contracts(answers: dict[str, Any]) -> None:
    assert truth.persons(scenario()) == {PHONE: PHONE, LAPTOP: PHONE}  # the older uid's id wins


def test_one_visitor_by_person_two_by_cookie(answers: dict[str, Any]) -> None:
    for by, days in (("person", {"2026-11-02": (1, 0), "2026-11-03": (0, 1), "2026-11-04": (0, 1)}),
                     ("cookie", {"2026-11-02": (1, 0), "2026-11-03": (1, 1), "2026-11-04": (0, 1)})):
        rows = answers[f"new_vs_returning {by}"]
        assert {r["date"]: (int(r["new_visitors"]), int(r["returning_visitors"])) for r in rows} == days
        assert truth.new_vs_returning(scenario(), "2026-11-01", by) == days
        assert {r["counted_by"] for r in rows} == {by}
    # the funnel: the day both devices visited is one attempt by person, two by cookie
    day = {by: {r["date"]: int(r["visits"]) for r in answers[f"08-funnel-by-day.sql {by}"]} for by in truth.BY}
    assert day["person"]["2026-11-03"] == 1 and day["cookie"]["2026-11-03"] == 2
    assert {r["date"]: int(r["purchase"]) for r in answers["08-funnel-by-day.sql person"]} == {
        "2026-11-02": 0, "2026-11-03": 0, "2026-11-04": 1}
    for by in truth.BY:
        want = truth.funnels(scenario(), by)[0]
        assert {r["date"]: [int(r[c]) for c in ("visits", "product", "checkout", "purchase")]
                for r in answers[f"08-funnel-by-day.sql {by}"]} == want


def test_segments_and_history_per_person(answers: dict[str, Any]) -> None:
    person = {r["uid"]: r for r in answers["10-segments.sql person"]}
    cookie = {r["uid"]: r for r in answers["10-segments.sql cookie"]}
    assert person[PHONE]["segment"] == person[LAPTOP]["segment"] == "champion" and person[PHONE]["person_id"] == PHONE
    assert float(cookie[PHONE]["revenue"]) == 0 and cookie[PHONE]["segment"] != "champion"
    history = answers["history person"]
    assert [(r["uid"], r["name"]) for r in history] == [(e["uid"], e["name"]) for e in truth.history(scenario(), PHONE)]
    assert {r["uid"] for r in history} == {PHONE, LAPTOP} and {r["counted_by"] for r in history} == {"person"}
    assert {r["uid"] for r in answers["history cookie"]} == {PHONE}
    assert [r["uid"] for r in answers["uids person"]] == [PHONE, LAPTOP]
    assert [r["uid"] for r in answers["uids cookie"]] == [PHONE, LAPTOP]  # both carried user.id after their login


def test_a_wrong_by_is_refused_by_name(answers: dict[str, Any]) -> None:
    assert "by must be person or cookie" in answers["bad by"]
