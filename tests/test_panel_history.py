"""The panel's User page API over the real store: a visitor's timeline by uid and by user id, and the 400s."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import aiohttp
from support.poll import wait_for
from test_tutorial_history import as_tuples, expected
from tutorial_store import RECIPES, cross_device_buyer, events, history_visitor, identify_people, stack, store_ready

from band.cli.ports import free_port
from band.panel import queries
from band.panel.app import running
from band.panel.config import PanelConfig

SEED, VISITORS, DAYS = 1, 60, 5
TOKEN = "history-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_the_recipes_are_the_panels_sql() -> None:
    for recipe, name in (("04-user-history.sql", "user-history"), ("04-uids-of-user.sql", "uids-of-user")):
        assert (RECIPES / recipe).read_text() == queries.sql(name), f"examples/recipes/{recipe} links to band/panel/sql/{name}.sql"


def test_a_visitors_timeline_by_uid_and_by_user_id() -> None:
    uid, user_id = history_visitor(SEED, VISITORS, DAYS)
    with stack(SEED, VISITORS, DAYS, []) as (url, _svcs):
        answers = asyncio.run(_ask(url, uid, user_id))
    by_uid = answers["uid"]
    assert by_uid["uids"] == [uid]
    assert as_tuples(by_uid["events"]) == expected(uid, events(SEED, VISITORS, DAYS))
    assert by_uid["sessions"] == sum(1 for e in events(SEED, VISITORS, DAYS) if e["uid"] == uid and e["name"] == "session") > 0
    assert answers["user_id"] == by_uid
    assert answers["stranger"] == {"uids": [], "sessions": 0, "counted_by": "person", "events": []}
    # one device: the same events either way, each row saying what was counted
    assert {e["counted_by"] for e in by_uid["events"]} == {"person"} and by_uid["counted_by"] == "person"
    by_cookie = answers["by cookie"]
    assert by_cookie["counted_by"] == "cookie" and {e["counted_by"] for e in by_cookie["events"]} == {"cookie"}
    assert as_tuples(by_cookie["events"]) == as_tuples(by_uid["events"]) and by_cookie["uids"] == by_uid["uids"]
    for key, words in (("none", "uid="), ("bad uid", "10 to 22 digits"), ("both", "not both"), ("empty", "empty"), ("long", "200"),
                       ("bad by", "person or cookie"), ("no id", "empty"), ("long id", "at most 512"), ("bad kind uid", "not a visitor uid"),
                       ("merge without b", "empty"), ("split of nothing", "empty"), ("unknown action", "merge or split")):
        status, body = answers[key]
        assert status == (404 if key == "unknown action" else 400) and words in body["error"], (key, body)


async def _ask(url: str, uid: str, user_id: str) -> dict[str, Any]:
    config = PanelConfig(port=free_port(), nats_url=url, token=TOKEN, interval_s=0.5, edge_urls=())
    out: dict[str, Any] = {}
    async with running(config) as base, aiohttp.ClientSession(headers=AUTH) as http:

        async def timeline() -> bool:  # once the store answers (its service may still be opening the tables)
            async with http.get(f"{base}/api/history", params={"uid": uid}) as resp:
                out["uid"] = await resp.json()
            return resp.status == 200 and bool(out["uid"]["events"])

        await wait_for(timeline, timeout=60, step=0.2, what="the visitor's timeline from the store")
        for key, params in (("user_id", {"user_id": user_id}), ("stranger", {"user_id": "nobody-at-all"}),
                            ("by cookie", {"uid": uid, "by": "cookie"})):
            async with http.get(f"{base}/api/history", params=params) as resp:
                assert resp.status == 200, await resp.text()
                out[key] = await resp.json()
        for key, params in (("none", {}), ("bad uid", {"uid": "12; DROP TABLE x"}), ("both", {"uid": uid, "user_id": user_id}),
                            ("empty", {"user_id": " "}), ("long", {"user_id": "x" * 201}), ("bad by", {"uid": uid, "by": "persons"})):
            async with http.get(f"{base}/api/history", params=params) as resp:
                out[key] = (resp.status, await resp.json())
        for key, params in (("no id", {"id": " "}), ("long id", {"id": "user:" + "x" * 513}), ("bad kind uid", {"id": "uid:12x"})):
            async with http.get(f"{base}/api/person", params=params) as resp:
                out[key] = (resp.status, await resp.json())
        for key, path, body in (("merge without b", "merge", {"a": f"uid:{uid}"}), ("split of nothing", "split", {}),
                                ("unknown action", "join", {"a": "user:a", "b": "user:b"})):
            async with http.post(f"{base}/api/person/{path}", json=body) as resp:
                out[key] = (resp.status, await resp.json())
    return out


def test_a_person_found_by_any_identifier_split_and_merged_again() -> None:
    phone, laptop, user_id = cross_device_buyer(SEED, VISITORS, DAYS)
    with stack(SEED, VISITORS, DAYS, []) as (url, svcs):
        got = asyncio.run(_person(url, svcs, phone, laptop, user_id))
    first = got["by user"]
    assert first["person_id"] == phone and [d["uid"] for d in first["devices"]] == [phone, laptop]
    for device in first["devices"]:  # as the device's events saw it
        mine = [e for e in events(SEED, VISITORS, DAYS) if e["uid"] == device["uid"]]
        assert device["events"] == len(mine)
        assert device["first_seen"] == dt.datetime.fromtimestamp(min(e["time"] for e in mine) // 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        assert device["last_seen"] == dt.datetime.fromtimestamp(max(e["time"] for e in mine) // 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert {i["identifier"] for i in first["identifiers"]} == {f"uid:{phone}", f"uid:{laptop}", f"user:{user_id}"}
    assert got["by phone"]["person_id"] == got["by laptop"]["person_id"] == first["person_id"]
    assert got["history"]["uids"] == [phone, laptop] and got["history by cookie"]["uids"] == [laptop]
    # the operator splits the laptop off: it is a person of its own, its history its own
    assert got["split"][0] == 200, got["split"]
    assert [d["uid"] for d in got["after split"]["devices"]] == [phone]
    assert got["laptop after split"]["person_id"] != first["person_id"] and got["history after split"]["uids"] == [laptop]
    # and merges it back: one person again, both changes recorded with who asked
    assert got["merge"][0] == 200, got["merge"]
    assert [d["uid"] for d in got["after merge"]["devices"]] == [phone, laptop]
    logged = [(m["action"], m["by"]) for m in got["after merge"]["merges"]]
    assert ("split", "panel:admin") in logged and ("merge", "panel:admin") in logged
    status, body = got["cross-origin"]
    assert status == 403 and "cross-origin" in body["error"]
    assert got["nobody"][0] == 404


async def _person(url: str, svcs: list[Any], phone: str, laptop: str, user_id: str) -> dict[str, Any]:
    from band._core.rpc import RPC
    from band._runtime.connect import connect

    nc = await connect(url, name="panel-person-test", max_reconnect_attempts=0)
    config = PanelConfig(port=free_port(), nats_url=url, token=TOKEN, interval_s=0.5, edge_urls=())
    out: dict[str, Any] = {}
    try:
        await store_ready(RPC(lambda: nc), svcs)
        await identify_people(RPC(lambda: nc), events(SEED, VISITORS, DAYS))
        async with running(config) as base, aiohttp.ClientSession(headers=AUTH) as http:

            async def get(path: str, **params: str) -> Any:
                async with http.get(f"{base}{path}", params=params) as resp:
                    assert resp.status == 200, await resp.text()
                    return await resp.json()

            async def post(path: str, body: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, Any]:
                async with http.post(f"{base}{path}", json=body, headers=headers or {}) as resp:
                    return resp.status, await resp.json()

            out["by user"] = await get("/api/person", id=f"user:{user_id}")
            out["by phone"] = await get("/api/person", id=phone)  # a bare uid
            out["by laptop"] = await get("/api/person", id=f"uid:{laptop}")
            out["history"] = await get("/api/history", uid=laptop)
            out["history by cookie"] = await get("/api/history", uid=laptop, by="cookie")
            out["cross-origin"] = await post("/api/person/split", {"id": f"uid:{laptop}"}, {"Origin": "https://elsewhere.example"})
            out["split"] = await post("/api/person/split", {"id": f"uid:{laptop}"})
            out["after split"] = await get("/api/person", id=f"user:{user_id}")
            out["laptop after split"] = await get("/api/person", id=f"uid:{laptop}")
            out["history after split"] = await get("/api/history", uid=laptop)
            out["merge"] = await post("/api/person/merge", {"a": f"uid:{phone}", "b": laptop})
            out["after merge"] = await get("/api/person", id=f"user:{user_id}")
            async with http.get(f"{base}/api/person", params={"id": "user:nobody-at-all"}) as resp:
                out["nobody"] = (resp.status, await resp.json())
    finally:
        await nc.close()
    return out
