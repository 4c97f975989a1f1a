"""band demo: the generator's events are repeatable, shaped as the SDK sends them, and pass a real edge."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from collections import Counter, defaultdict
from typing import Any

from support.fakes import running_edge

from band.demo import CONVERSION, generate
from band.demo.edge import send

START = dt.date(2026, 11, 1)


def test_same_seed_same_events_other_seed_other_events() -> None:
    assert generate(3, 60, 7, START) == generate(3, 60, 7, START)
    assert generate(3, 60, 7, START) != generate(4, 60, 7, START)


def test_events_look_like_a_site_with_sessions_sources_and_purchases() -> None:
    events = generate(1, 400, 14, START)
    lo = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp() * 1000)
    assert all(lo <= e["time"] < lo + 14 * 86_400_000 for e in events)
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    names = Counter(e["name"] for e in events)
    for name in ("session", "page", "page_loaded", "scroll", "activity", "form_submit", "identify", "page_unload", CONVERSION):
        assert names[name] > 0, name
    by_uid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_uid[e["uid"]].append(e)
        assert e["key"] == f"in.gen.track.{e['name']}" and e["data"]["name"] == e["name"] and e["data"]["uid"] == e["uid"]
        assert set(e["data"]) >= {"page", "sess", "browser", "user", "lib"}
    assert len(by_uid) == 400 + 2 * 20  # and 20 people on a phone and a laptop
    returning_on_later_days = 0
    kinds: set[str] = set()
    for evs in by_uid.values():
        sessions = [e for e in evs if e["name"] == "session"]
        assert [s["data"]["sess"]["num"] for s in sessions] == list(range(1, len(sessions) + 1))
        assert evs[0]["name"] == "session"
        for s in sessions:  # the session event opens its session; the landing URL carries the marks
            sess = s["data"]["sess"]
            kinds.add(sess["type"])
            assert sess["pageNum"] == 1 and sess["eventNum"] == 0 and sess["start"] == s["time"]
            assert s["data"]["page"].get("query", {}) == sess["marks"]
            assert (sess["type"] == "campaign") == bool(sess["marks"].get("utm_source"))
        if len({s["time"] // 86_400_000 for s in sessions}) > 1:
            returning_on_later_days += 1
        buys = [e for e in evs if e["name"] == CONVERSION]
        assert len(buys) <= 1
        if buys:
            assert buys[0]["data"]["data"]["revenue"] > 0 and buys[0]["data"]["page"]["url"].endswith("/checkout")
    assert kinds == {"campaign", "organic", "social", "referral", "direct"}
    assert returning_on_later_days > 20


def test_people_on_two_devices_see_an_ad_on_the_phone_and_buy_on_the_laptop() -> None:
    from band.demo.generate import DEVICES

    events = generate(2, 300, 10, START)
    def strip(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "id"} for e in evs]

    # the other visitors' events stay the same (ids aside: they count events within a millisecond)
    assert strip([e for e in events if e["uid"] not in _two_device_uids(events)]) == strip(generate(2, 300, 10, START, cross_device=0))
    lo = int(dt.datetime(2026, 11, 1, tzinfo=dt.UTC).timestamp() * 1000)
    uids = _two_device_uids(events)
    people: dict[str, list[str]] = defaultdict(list)
    for e in events:
        user_id = e["data"]["user"].get("id")
        if e["uid"] in uids and user_id and e["uid"] not in people[user_id]:
            people[user_id].append(e["uid"])
    assert len(people) == 15 and all(len(v) == 2 for v in people.values())
    for phone, laptop in people.values():
        mine = [e for e in events if e["uid"] in (phone, laptop)]
        assert all(lo <= e["time"] < lo + 10 * 86_400_000 for e in mine)
        on_phone = [e for e in mine if e["uid"] == phone]
        on_laptop = [e for e in mine if e["uid"] == laptop]
        assert on_phone[-1]["time"] < on_laptop[0]["time"]
        assert {e["td"]["ua"] for e in on_phone} == {DEVICES[2][0]} and {e["td"]["ua"] for e in on_laptop} == {DEVICES[0][0]}
        assert on_phone[0]["data"]["sess"]["type"] == "campaign" and not any(e["name"] == CONVERSION for e in on_phone)
        assert on_laptop[0]["data"]["sess"]["type"] == "direct" and not on_laptop[0]["data"]["user"].get("id")  # anonymous at first
        names = [e["name"] for e in on_laptop]
        assert names.index("identify") < names.index(CONVERSION)
        assert [e["name"] for e in on_phone].count("identify") == 1


def _two_device_uids(events: list[dict[str, Any]]) -> set[str]:
    """The uids whose user id was seen on another uid too."""
    seen: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e["data"]["user"].get("id"):
            seen[e["data"]["user"]["id"]].add(e["uid"])
    return {u for uids in seen.values() if len(uids) > 1 for u in uids}


def test_jsonl_from_the_command_line() -> None:
    out = subprocess.run([sys.executable, "-m", "band", "demo", "--seed", "5", "--visitors", "4", "--days", "2", "--start", "2026-11-01", "--jsonl", "-"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()] == generate(5, 4, 2, START)
    bad = subprocess.run([sys.executable, "-m", "band", "demo", "--days", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--days" in bad.stderr
    none = subprocess.run([sys.executable, "-m", "band", "demo", "--visitors", "1", "--edge", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=60)
    assert none.returncode == 1 and "make run" in none.stderr


async def test_through_a_real_edge_every_event_arrives_as_generated(tmp_path: Any) -> None:
    """On a nats-server of its own: ~700 events in the shared stream would be a backlog for other tests' listeners."""
    import nats

    from band.cli.natsserver import NatsServer

    with NatsServer(store_dir=tmp_path / "js") as server:
        nc = await nats.connect(server.url)
        try:
            await _through_the_edge(nc, server.url)
        finally:
            await nc.close()


async def _through_the_edge(nc: Any, nats_url: str) -> None:
    events = generate(11, 25, 3, START)
    want = {e["uid"] for e in events}
    got: list[dict[str, Any]] = []
    js = nc.jetstream()
    async with running_edge(nats_url, ip_policy="keep") as (client, _edge):  # the payload untouched, the address too
        sub = await js.subscribe("in.gen.track.>", ordered_consumer=True)  # the edge made the stream
        base = str(client.make_url("/"))
        sent = await send(events, base, concurrency=4)
        assert sent.ok == len(events) and sent.failed == 0
        deadline = asyncio.get_running_loop().time() + 20
        while len(got) < len(events) and asyncio.get_running_loop().time() < deadline:
            msg = await sub.next_msg(timeout=5)
            try:  # other tests publish on the same stream, some of it not even JSON
                message = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("uid") in want:
                got.append(message)
    await sub.unsubscribe()
    assert len(got) == len(events)
    by_uid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in got:
        by_uid[m["uid"]].append(m)
    for e in events:  # per visitor, the order the browser sent them; the payload untouched
        m = by_uid[e["uid"]].pop(0)
        assert m["name"] == e["name"] and m["service"] == "track"
        assert {k: m["data"][k] for k in e["data"]} == e["data"]
        assert m["td"]["ua"] == e["td"]["ua"] and m["td"]["ip"] == e["td"]["ip"] and m["td"]["ref"] == e["td"]["ref"]


def test_straight_into_the_store_every_event_is_a_row(tmp_path: Any) -> None:
    import pytest

    pytest.importorskip("band.store.rows")
    pytest.importorskip("chdb")
    store = tmp_path / "store"
    run = subprocess.run([sys.executable, "-m", "band", "demo", "--store", str(store), "--visitors", "30", "--days", "3", "--start", "2026-11-01"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    count = ("import json, sys; from pathlib import Path; from band.store.engines import open_backend; b = open_backend('', Path(sys.argv[1])); "
             "print(json.dumps(b.select('SELECT (SELECT count() FROM stats.events) + (SELECT count() FROM stats.activity) AS n, "
             "(SELECT min(date) FROM stats.events) AS first', readonly=True)['rows'][0]))")
    out = subprocess.run([sys.executable, "-c", count, str(store)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert int(row["n"]) == len(generate(1, 30, 3, START)) and row["first"] == "2026-11-01"
