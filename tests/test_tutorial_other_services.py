"""01: data from other services, through a real edge: a mobile tracker's postbacks land in
`webhooks`, an ad platform's cost CSV goes in chunks to the costs handler and store.insert;
cost per campaign is joined with the sessions (docs/tutorials/01-other-services.md)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from tutorial_store import DAYS, RECIPES, ROOT, SEED, VISITORS, events, stack, store_ready

from band.demo.costs import costs, to_csv

OVERLAY = {"STORE_CONFIG": str(RECIPES / "store.yml")}
POSTBACKS = [
    ("install", {"click_id": "c-1", "campaign": "winter_sale", "media_source": "googleadwords_int", "platform": "ios", "revenue": "0"}),
    ("install", {"click_id": "c-2", "campaign": "brand", "media_source": "googleadwords_int", "platform": "android", "revenue": "0"}),
    ("purchase", {"click_id": "c-1", "campaign": "winter_sale", "media_source": "googleadwords_int", "platform": "ios", "revenue": "4.99",
                  "unknown_macro": "{idfv}"}),
]


GA_HITS = [  # GA4 Measurement Protocol payloads, as the page sends them to Google and to the edge
    {"client_id": "1234.5678", "events": [
        {"name": "page_view", "params": {"page_location": "https://shop.example.com/", "page_title": "Example Shop", "session_id": "171",
                                          "engagement_time_msec": 1200}},
        {"name": "scroll", "params": {"page_location": "https://shop.example.com/", "session_id": "171", "engagement_time_msec": 5300}}]},
    {"client_id": "1234.5678", "user_id": "lead-1", "events": [
        {"name": "purchase", "params": {"page_location": "https://shop.example.com/checkout", "session_id": "171", "transaction_id": "o-1",
                                         "value": 49.0, "currency": "EUR", "items": [{"item_id": "boots", "price": 49.0}]}}]},
]


# the page's own hits (GA collect, cookie sync) come from a browser: the edge flags a script's user agent as a bot
BROWSER = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"}


def post_json(url: str, body: Any) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "text/plain", **BROWSER})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except OSError:
        return 0


def no_redirect(url: str, cookie: str) -> tuple[int, str]:
    """(status, Location) of a GET that does not follow redirects, as a test of the chain."""
    class Stop(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(Stop)
    try:
        with opener.open(urllib.request.Request(url, headers={"Cookie": cookie, **BROWSER}), timeout=10) as resp:
            return int(resp.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), str(exc.headers.get("Location", ""))


def get_json(url: str, cookie: str) -> Any:
    request = urllib.request.Request(url, headers={"Cookie": cookie, **BROWSER})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except OSError:
        return 0


async def scenario(url: str, svcs: list[Any], tmp: Path) -> dict[str, Any]:
    from band._core.rpc import RPC
    from band._runtime.connect import connect

    port = free_port()
    edge = subprocess.Popen([sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(port), "--nats", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    nc = await connect(url, name="other-services-test", max_reconnect_attempts=0)
    rpc = RPC(lambda: nc)
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        await store_ready(rpc, svcs)
        deadline = asyncio.get_running_loop().time() + 30
        while await asyncio.to_thread(get, base + "/health") != 200:
            assert asyncio.get_running_loop().time() < deadline, "the edge did not start"
            await asyncio.sleep(0.2)
        for name, fields in POSTBACKS:  # as the tracker calls the postback URL, macros filled in
            status = await asyncio.to_thread(get, f"{base}/postback/{name}?{urllib.parse.urlencode(fields)}")
            assert status == 200
        for hit in GA_HITS:  # sendBeacon's text/plain JSON, as gtag sends it
            assert await asyncio.to_thread(post_json, f"{base}/ga/collect?measurement_id=G-TEST", hit) == 200
        # calltracking: eight demo visitors see a number (the pool of five wraps), then three calls come in
        visitors = sorted({e["uid"] for e in events()})[:8]
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # the calltracking handler is discovered by the edge
            answer = await asyncio.to_thread(get_json, f"{base}/calltracking/number", f"uid={visitors[0]}")
            if "phone" in answer or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.3)
        shows = [(visitors[0], answer["phone"])]
        for uid in visitors[1:]:
            shows.append((uid, (await asyncio.to_thread(get_json, f"{base}/calltracking/number", f"uid={uid}"))["phone"]))
        out["shows"] = shows
        count = "SELECT count() AS n FROM stats.calltracking_shows"
        while int((await rpc.request("store", "query", timeout__=30, sql=count, params=None))["rows"][0]["n"]) < len(shows):
            assert asyncio.get_running_loop().time() < deadline + 30, "the shows did not reach the store"
            await asyncio.sleep(0.2)
        out["calls"] = [shows[0][1], shows[1][1], shows[6][1]]
        for number in out["calls"]:
            await asyncio.to_thread(get_json, f"{base}/calltracking/who?number={number}&caller=79161234567", "")
        # cookie-sync: five browsers walk the partner chain; each partner sends them back with its id as pid
        synced = []
        deadline = asyncio.get_running_loop().time() + 30
        while (await asyncio.to_thread(no_redirect, f"{base}/cookiesync/step", "uid=1000000000"))[0] != 302:  # routed by the edge
            assert asyncio.get_running_loop().time() < deadline, "the cookiesync handler was not routed"
            await asyncio.sleep(0.3)
        for n, uid in enumerate(visitors[:5]):
            url_now = f"{base}/cookiesync/step"
            for partner in range(3):
                status, location = await asyncio.to_thread(no_redirect, url_now, f"uid={uid}")
                if partner == 2:
                    assert status == 200  # the pixel at the end
                    break
                assert status == 302, status
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
                back = urllib.parse.urlsplit(query["redirect" if partner == 0 else "return"][0])
                pid = f"p{partner}-{n}-{uid[-6:]}"
                synced.append((uid, partner, pid))
                url_now = f"{base}{back.path}?{back.query}&pid={pid}"
        out["synced"] = synced
        report = tmp / "costs.csv"
        report.write_text(to_csv(costs(events(), SEED)))
        bad = tmp / "bad.csv"
        bad.write_text("date,source,campaign,clicks,cost\n2026-11-01,google,brand,3,1.5\n2026-11-02,google,brand,many,1.5\n")
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # the costs handler is discovered by the edge
            push = await asyncio.to_thread(subprocess.run, [sys.executable, str(RECIPES / "costs" / "push.py"), str(report), "--edge", base,
                                                              "--lines", "10"], capture_output=True, text=True, timeout=120)
            if push.returncode == 0 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        out["push"] = (push.returncode, push.stderr)
        refused = await asyncio.to_thread(subprocess.run, [sys.executable, str(RECIPES / "costs" / "push.py"), str(bad), "--edge", base],
                                          capture_output=True, text=True, timeout=60)
        out["refused"] = (refused.returncode, refused.stderr)
        deadline = asyncio.get_running_loop().time() + 30
        sql = (RECIPES / "01-postbacks.sql").read_text()
        while len((await rpc.request("store", "query", timeout__=30, sql=sql, params=None))["rows"]) < len(POSTBACKS):
            assert asyncio.get_running_loop().time() < deadline, "the postbacks did not reach the store"
            await asyncio.sleep(0.3)
        ga = (RECIPES / "02-ga-events.sql").read_text()
        while len((await rpc.request("store", "query", timeout__=30, sql=ga, params=None))["rows"]) < 3:
            assert asyncio.get_running_loop().time() < deadline, "the GA hits did not reach the store"
            await asyncio.sleep(0.3)
        calls = (RECIPES / "03-calls.sql").read_text()
        while len((await rpc.request("store", "query", timeout__=30, sql=calls, params=None))["rows"]) < 3:
            assert asyncio.get_running_loop().time() < deadline + 30, "the calls did not reach the store"
            await asyncio.sleep(0.3)
        matches = (RECIPES / "09-cookie-matches.sql").read_text()
        while len((await rpc.request("store", "query", timeout__=30, sql=matches, params=None))["rows"]) < 10:
            assert asyncio.get_running_loop().time() < deadline + 30, "the cookie-sync steps did not reach the store"
            await asyncio.sleep(0.3)
        linked = "SELECT count() AS n FROM stats.identities FINAL WHERE kind IN ('partner', 'phone')"
        while int((await rpc.request("store", "query", timeout__=30, sql=linked, params=None))["rows"][0]["n"]) < 11:
            assert asyncio.get_running_loop().time() < deadline + 30, "the partner ids and the caller did not join the graph"
            await asyncio.sleep(0.3)
        out["identities"] = (await rpc.request("store", "query", timeout__=30, params=None,
                                               sql="SELECT identifier, person_id FROM stats.identities FINAL"))["rows"]
        for name in ("01-postbacks.sql", "01-cost-per-campaign.sql", "02-ga-events.sql", "03-calls.sql", "03-number-sources.sql",
                     "09-cookie-matches.sql"):
            out[name] = (await rpc.request("store", "query", timeout__=30, sql=(RECIPES / name).read_text(), params=None))["rows"]
        out["extra keys"] = (await rpc.request("store", "query", timeout__=30, params=None,
                                               sql="SELECT extra.key AS k FROM stats.webhooks WHERE name = 'purchase' AND service = 'postback'"))["rows"]
        return out
    finally:
        edge.terminate()
        edge.wait(timeout=30)
        await nc.close()


_RUN: dict[str, Any] = {}


def _shared(tmp: Path) -> dict[str, Any]:
    """One stack for this module's tests (it takes a while to start)."""
    if not _RUN:
        with stack(SEED, VISITORS, DAYS, [RECIPES / "costs", ROOT / "examples" / "calltracking", ROOT / "examples" / "crm",
                                                     ROOT / "examples" / "cookiesync"], OVERLAY) as (url, svcs):
            _RUN.update(asyncio.run(scenario(url, svcs, tmp)))
    return _RUN


def test_postbacks_and_cost_per_campaign(tmp_path: Path) -> None:
    got = _shared(tmp_path)
    code, err = got["push"]
    assert code == 0, err
    code, err = got["refused"]
    assert code == 1 and "line 3" in err and "many" in err
    rows = got["01-postbacks.sql"]
    assert [(r["event"], r["click_id"], r["campaign"], r["media_source"], r["platform"], float(r["revenue"])) for r in rows] == [
        (n, f["click_id"], f["campaign"], f["media_source"], f["platform"], float(f["revenue"])) for n, f in POSTBACKS]
    assert "unknown_macro" in got["extra keys"][0]["k"]  # nothing a tracker sends is dropped
    # the independent computation: the generated cost lines and the generated sessions and purchases
    want: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for line in costs(events(), SEED):
        want[(line["source"], line["campaign"])]["clicks"] += line["clicks"]
        want[(line["source"], line["campaign"])]["cost"] += line["cost"]
    for e in events():
        marks = e["data"]["sess"].get("marks", {})
        key = (marks.get("utm_source", ""), marks.get("utm_campaign", ""))
        if key in want and e["name"] == "session":
            want[key]["sessions"] += 1
        if key in want and e["name"] == "purchase":
            want[key]["purchases"] += 1
            want[key]["revenue"] += e["data"]["data"]["revenue"]
    table = got["01-cost-per-campaign.sql"]
    assert {(r["source"], r["campaign"]) for r in table} == set(want)
    for r in table:
        w = want[(r["source"], r["campaign"])]
        assert int(r["clicks"]) == w["clicks"] and int(r["sessions"]) == w["sessions"] and int(r["purchases"]) == w["purchases"]
        assert float(r["cost"]) == pytest.approx(w["cost"], abs=0.006)
        assert float(r["revenue"]) == pytest.approx(w["revenue"], abs=0.006)
        assert float(r["cost_per_session"]) == pytest.approx(w["cost"] / w["sessions"], abs=0.006)
        assert float(r["roas"]) == pytest.approx(w["revenue"] / w["cost"], abs=0.006)


def test_ga_hits_kept_raw_and_parsed_into_columns(tmp_path: Path) -> None:
    got = _shared(tmp_path)
    rows = got["02-ga-events.sql"]
    want = [(hit, event) for hit in GA_HITS for event in hit["events"]]
    assert len(rows) == len(want)
    for row, (hit, event) in zip(rows, want, strict=True):
        p = event["params"]
        assert row["measurement_id"] == "G-TEST" and row["client_id"] == hit["client_id"] and row["user_id"] == hit.get("user_id", "")
        assert row["event"] == event["name"] and row["page_location"] == p["page_location"] and row["session_id"] == p["session_id"]
        assert int(row["engagement_time_msec"]) == p.get("engagement_time_msec", 0)
        assert row["transaction_id"] == p.get("transaction_id", "") and float(row["value"]) == p.get("value", 0.0)
        assert row["currency"] == p.get("currency", "")


def last_session(uid: str) -> dict[str, Any]:
    return max((e for e in events() if e["uid"] == uid and e["name"] == "session"), key=lambda e: e["time"])


def test_calls_joined_to_the_visitor_and_their_session(tmp_path: Path) -> None:
    import tutorial_truth as truth

    got = _shared(tmp_path)
    shows = got["shows"]
    assert len({phone for _, phone in shows}) == 5  # the pool wrapped
    rows = got["03-calls.sql"]
    assert [r["number"] for r in rows] == got["calls"]
    for row in rows:
        owner = [uid for uid, phone in shows if phone == row["number"]][-1]  # the last visitor shown the number
        session = last_session(owner)
        assert row["visitor"] == owner and row["caller"] == "79161234567"
        assert row["channel"] == truth.channel_of(session)
        assert row["utm_campaign"] == session["data"]["sess"]["marks"].get("utm_campaign", "")
        assert row["landing"] == urllib.parse.urlsplit(session["data"]["page"]["url"]).path
    want: dict[tuple[str, str], list[str]] = defaultdict(list)
    for uid, phone in shows:
        want[(phone, truth.channel_of(last_session(uid)))].append(uid)
    table = got["03-number-sources.sql"]
    assert {(r["phone"], r["channel"]): (int(r["shows"]), int(r["visitors"])) for r in table} == {
        k: (len(v), len(set(v))) for k, v in want.items()}


def test_cookie_sync_matches_are_queryable(tmp_path: Path) -> None:
    got = _shared(tmp_path)
    rows = got["09-cookie-matches.sql"]
    assert [(r["uid"], int(r["partner"]), r["partner_id"]) for r in rows] == sorted(got["synced"])
    assert all(int(r["syncs"]) == 1 for r in rows)


def test_partner_ids_and_callers_join_the_visitors_person(tmp_path: Path) -> None:
    """cookiesync links each partner's id, calltracking the caller's number, to the visitor (docs/identity.md)."""
    import yaml

    got = _shared(tmp_path)
    person = {r["identifier"]: int(r["person_id"]) for r in got["identities"]}

    def of_uid(uid: str) -> int:
        return person.get(f"uid:{uid}", int(uid))

    config = yaml.safe_load((ROOT / "examples" / "cookiesync" / "config.yml").read_text())
    hosts = [urllib.parse.urlsplit(url).hostname for url in config["partners"]]
    for uid, partner, pid in got["synced"]:
        assert person[f"partner:{hosts[partner]}:{pid}"] == of_uid(uid)
    # the three calls came from one caller: the visitors each number was last shown to are one person now
    owners = {[uid for uid, phone in got["shows"] if phone == number][-1] for number in got["calls"]}
    assert {of_uid(uid) for uid in owners} == {person["phone:79161234567"]}
