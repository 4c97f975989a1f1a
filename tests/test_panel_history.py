"""The panel's User page API over the real store: a visitor's timeline by uid and by user id, and the 400s."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from support.poll import wait_for
from test_tutorial_history import as_tuples, expected
from tutorial_store import RECIPES, events, history_visitor, stack

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
                       ("bad by", "person or cookie"), ("no id", "type an identifier"), ("long id", "1 to 512"), ("bad kind uid", "below 2^64"),
                       ("merge without b", "type an identifier"), ("split of nothing", "type an identifier"), ("unknown action", "merge or split")):
        status, body = answers[key]
        assert status == 400 and words in body["error"], (key, body)


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
