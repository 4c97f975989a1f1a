"""Consent at the edge: the cookieless uid until the page grants, the cookies a grant and a
denial set, GPC and DNT, the alias a grant publishes, /lib.js, and the store's column."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer
from support.fakes import BROWSER, edge_config
from support.poll import wait_for
from support.processes import start_edge
from support.sdk import arrivals
from support.store import counted, event, publish, start_store

from band import store, wire
from band.cli.natsserver import NatsServer
from broker.app import make_app

DAY = 86400.0
IP = "203.0.113.7"
COOKIE_UID = "7533625602981122048"
AS_SEEN = {"User-Agent": BROWSER, "X-Real-IP": IP}  # the test client's 127.0.0.1 is a trusted proxy


class Clock:
    """The UTC clock the edge's daily key follows (make_app's test hook)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def edge(nats_url: str, clock: Callable[[], float] = time.time, **changes: Any) -> AsyncIterator[TestClient[Any, Any]]:
    server = TestServer(make_app(edge_config(nats_url, cookie_secure=False, **changes), clock=clock), host="127.0.0.1", port=0)
    async with TestClient(server, cookie_jar=DummyCookieJar()) as client:  # each request sends the cookies it names, no others
        yield client


def cookies(resp: Any) -> dict[str, str]:
    """name -> the whole Set-Cookie value, for every cookie the answer sets."""
    return {value.split("=", 1)[0]: value for value in resp.headers.getall("Set-Cookie", [])}


async def hit(client: TestClient[Any, Any], path: str = "/consented/page", **headers: str) -> Any:
    resp = await client.get(path, headers={**AS_SEEN, **headers})
    assert resp.status == 200, await resp.text()
    return resp


async def test_required_no_cookie_and_a_daily_uid_until_the_page_grants(nc: Any, nats_url: str) -> None:
    clock = Clock()
    async with arrivals(nc, "in.gen.consented.>") as seen, edge(nats_url, clock, consent="required") as client:
        first = await hit(client)
        again = await hit(client, Cookie=f"uid={COOKIE_UID}")  # a cookie from before: neither read nor touched
        named = await hit(client, "/consented/page?uid=1234567890123")  # a uid the hit names: ignored too
        other = await hit(client, **{"User-Agent": BROWSER + " Other"})
        clock.now += DAY
        tomorrow = await hit(client)
        events = await seen.take(5)
    for resp in (first, again, named, other, tomorrow):
        assert "Set-Cookie" not in resp.headers
    assert [e[wire.CONSENT_FIELD] for e in events] == [0] * 5
    uids = [e["uid"] for e in events]
    assert uids[0] == uids[1] == uids[2] and int(uids[0]) >= 2**63 and wire.is_uid(uids[0])  # the same visitor all day
    assert uids[3] != uids[0]  # another browser
    assert uids[4] != uids[0]  # unlinkable the next day
    assert "consent" not in events[0]["data"]


async def test_a_grant_keeps_the_days_uid_and_sets_both_cookies(nc: Any, nats_url: str) -> None:
    async with arrivals(nc, "in.gen.>") as seen, edge(nats_url, consent="required") as client:
        before = await hit(client)
        grant = await hit(client, "/consented/consent?consent=granted")
        after = await hit(client, Cookie=f"uid={(await seen.take(2))[0]['uid']}; uid_consent=granted")  # no word: the cookie says it
        events = await seen.take(3)
    cookieless = events[0]["uid"]
    set_now = cookies(grant)
    assert set(set_now) == {"uid", "uid_consent"} and set_now["uid"].startswith(f"uid={cookieless};")
    assert set_now["uid_consent"].startswith("uid_consent=granted;") and "Max-Age=94608000" in set_now["uid_consent"]
    assert [e["uid"] for e in events] == [cookieless] * 3  # one person across the grant: the same uid
    assert [e[wire.CONSENT_FIELD] for e in events] == [0, 1, 1]
    assert "consent" not in events[1]["data"]  # the page's word became the message's field
    assert "Set-Cookie" not in before.headers and set(cookies(after)) == {"uid", "uid_consent"}
    assert not [e for e in seen.events if e["service"] == "identity"]  # nothing to join


async def test_a_grant_from_a_browser_with_another_uid_publishes_an_alias(nc: Any, nats_url: str) -> None:
    async with arrivals(nc, "in.gen.consented.>") as seen, arrivals(nc, "in.gen.identity.>") as joins, \
            edge(nats_url, consent="required") as client:
        await hit(client, Cookie=f"uid={COOKIE_UID}")
        cookieless = (await seen.take(1))[0]["uid"]
        await hit(client, "/consented/consent?consent=granted", Cookie=f"uid={COOKIE_UID}")
        await hit(client, "/consented/page?consent=granted", Cookie=f"uid={COOKIE_UID}")  # the page says it again: joined once
        await hit(client, "/consented/page?consent=granted", Cookie=f"uid={COOKIE_UID}; uid_consent=granted")
        events = await seen.take(4)
        alias = (await joins.take(1))[0]
    assert [e["uid"] for e in events[1:]] == [COOKIE_UID] * 3 and [e[wire.CONSENT_FIELD] for e in events] == [0, 1, 1, 1]
    assert alias["key"] == "in.gen.identity.alias" and alias["service"] == "identity" and alias["name"] == "alias"
    assert alias["data"] == {"previous_id": f"uid:{cookieless}", "user_id": f"uid:{COOKIE_UID}"} and alias["uid"] == COOKIE_UID
    assert alias["td"]["ip"] == "203.0.113.0"  # the IP policy holds for it too
    assert len(joins.events) == 1


@pytest.mark.parametrize("mode", ["required", "implied"])
async def test_denied_clears_the_uid_cookie_records_the_refusal_and_goes_cookieless(nc: Any, nats_url: str, mode: str) -> None:
    async with arrivals(nc, "in.gen.consented.>") as seen, edge(nats_url, consent=mode) as client:
        await hit(client, "/consented/page", Cookie=f"uid={COOKIE_UID}; uid_consent=granted")
        denied = await client.post("/consented/consent", json={"consent": "denied"}, headers={**AS_SEEN, "Cookie": f"uid={COOKIE_UID}; uid_consent=granted"})
        assert denied.status == 200
        later = await hit(client, Cookie="uid_consent=denied")  # a tracker that sends no word (the Rockstat SDK): still refused
        events = await seen.take(3)
    cleared = cookies(denied)
    assert set(cleared) == {"uid", "uid_consent"} and cleared["uid"].startswith("uid=;") and "Max-Age=0" in cleared["uid"]
    assert cleared["uid_consent"].startswith("uid_consent=denied;") and "Max-Age=94608000" in cleared["uid_consent"]
    assert "Set-Cookie" not in later.headers
    assert events[0]["uid"] == COOKIE_UID  # before the word, the consent cookie granted
    for refused in events[1:]:
        assert refused["uid"] != COOKIE_UID and refused[wire.CONSENT_FIELD] == 0 and int(refused["uid"]) >= 2**63


async def test_gpc_is_a_refusal_in_either_mode_and_dnt_by_setting(nc: Any, nats_url: str) -> None:
    async with arrivals(nc, "in.gen.consented.>") as seen:
        async with edge(nats_url) as client:  # implied: today's cookie, unless refused
            implied = await hit(client)
            gpc = await hit(client, "/consented/page?consent=granted", **{"Sec-GPC": "1"})  # the browser's word wins
            gpc_cookie = await hit(client, **{"Sec-GPC": "1", "Cookie": f"uid={COOKIE_UID}"})
            dnt = await hit(client, DNT="1")  # not honoured unless asked
        async with edge(nats_url, consent_dnt=True) as client:
            dnt_honoured = await hit(client, DNT="1")
        events = await seen.take(5)
    assert set(cookies(implied)) == {"uid"} and wire.CONSENT_FIELD not in events[0]  # implied: as always, no consent field
    assert "Set-Cookie" not in gpc.headers and events[1][wire.CONSENT_FIELD] == 0 and int(events[1]["uid"]) >= 2**63
    assert set(cookies(gpc_cookie)) == {"uid", "uid_consent"} and all("Max-Age=0" in v for v in cookies(gpc_cookie).values())  # nothing recorded
    assert events[2]["uid"] != COOKIE_UID
    assert set(cookies(dnt)) == {"uid"}
    assert "Set-Cookie" not in dnt_honoured.headers and events[4][wire.CONSENT_FIELD] == 0


async def test_a_word_the_edge_does_not_know_is_a_400_naming_it(nats_url: str) -> None:
    async with edge(nats_url, consent="required") as client:
        resp = await client.get("/consented/page?consent=yes", headers=AS_SEEN)
        assert resp.status == 400 and "consent must be 'granted' or 'denied', got 'yes'" in (await resp.json())["message"]


async def test_lib_js_hands_out_no_uid_without_consent(nats_url: str) -> None:
    def configured(body: str) -> dict[str, Any]:
        found = re.match(r"^;window\[\"rstat\"\]&&window\[\"rstat\"\]\('configure',(\{.*?\})\);", body)
        assert found, body[:200]
        return dict(json.loads(found[1]))

    async with edge(nats_url, consent="required") as client:
        pending = await client.get("/lib.js", headers=AS_SEEN)
        granted = await client.get("/lib.js", headers={**AS_SEEN, "Cookie": f"uid={COOKIE_UID}; uid_consent=granted"})
        gpc = await client.get("/lib.js", headers={**AS_SEEN, "Cookie": f"uid={COOKIE_UID}; uid_consent=granted", "Sec-GPC": "1"})
        assert "Set-Cookie" not in pending.headers and "no-store" in pending.headers["Cache-Control"]  # asked again after a grant
        assert granted.headers["Cache-Control"].startswith("private")
        assert configured(await pending.text()) == {"initialUid": 0, "urlMark": "band", "consent": "required"}
        assert configured(await granted.text())["initialUid"] == COOKIE_UID and set(cookies(granted)) == {"uid", "uid_consent"}
        assert configured(await gpc.text())["initialUid"] == 0 and all("Max-Age=0" in v for v in cookies(gpc).values())


async def test_a_websocket_without_consent_gets_no_cookie_and_the_days_uid(nc: Any, nats_url: str) -> None:
    async with arrivals(nc, "in.gen.consented.>") as seen, edge(nats_url, consent="required") as client:
        async with client.ws_connect("/wss", headers=AS_SEEN) as ws:
            await ws.send_str(json.dumps({"service": "consented", "name": "frame", "id__": 1}))
            assert json.loads((await ws.receive(timeout=10)).data)["statusCode"] == 200
            await ws.send_str(json.dumps({"service": "consented", "name": "frame", "consent": "granted", "id__": 2}))
            assert json.loads((await ws.receive(timeout=10)).data)["statusCode"] == 200
        assert "Set-Cookie" not in ws._response.headers
        first, second = await seen.take(2)
    assert first[wire.CONSENT_FIELD] == 0 and int(first["uid"]) >= 2**63
    assert second[wire.CONSENT_FIELD] == 1 and second["uid"] == first["uid"]  # the frame's grant keeps the day's uid


@pytest.mark.slow
async def test_the_store_keeps_consent_in_its_column(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    """0 where the edge said so; 1 where it said 1 or nothing (consent implied, or events
    from before the column)."""
    proc = start_store(tmp_path, own_nats.url)
    try:
        without, granted, cookieless = event(1), event(2), event(3)
        granted[wire.CONSENT_FIELD], cookieless[wire.CONSENT_FIELD] = 1, 0
        await publish(store_client, [without, granted, cookieless])
        await counted(3, proc)
        rows = await store.query("SELECT id, consent FROM stats.events ORDER BY id")
        assert [r["consent"] for r in rows] == [1, 1, 0]
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


@pytest.mark.slow
async def test_an_edges_workers_agree_on_the_cookieless_uid(nc: Any, nats_url: str, tmp_path: Path) -> None:
    """`--workers 2` without a configured secret: the workers share the one drawn at start,
    so the visitor's uid does not depend on the worker its connection lands on."""
    proc, port = start_edge(nats_url, tmp_path, args=["--workers", "2"], EDGE_CONSENT="required", LOG_LEVEL="INFO")
    try:
        async with arrivals(nc, "in.gen.consented.>") as seen:
            async def up() -> bool:
                try:
                    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(up, timeout=30, what="the edge's workers", procs=[proc])
            await wait_for(lambda: proc.text().count("band edge ready") == 2, timeout=30, what="both workers ready", procs=[proc])
            for _ in range(16):  # a connection each: SO_REUSEPORT spreads them over the workers
                async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/consented/page", headers=AS_SEEN) as resp:
                    assert resp.status == 200 and "Set-Cookie" not in resp.headers
            events = await seen.take(16)
        assert len({e["uid"] for e in events}) == 1 and {e[wire.CONSENT_FIELD] for e in events} == {0}
        assert proc.stop(timeout=30) == 0
    finally:
        proc.kill()
