"""``POST /band/identify.json`` on real edges (``python -m broker``) into a real store:
the project key, wrong bodies, browsers kept out of the identity service, and identifies
of one uid racing through two edges making one person."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.fakes import BROWSER, running_edge
from support.poll import wait_for
from support.processes import start_edge
from support.store import start_store

from band import RPCError, store
from band.cli.natsserver import NatsServer

pytest.importorskip("chdb")

KEY = "k3y-for-tests-0123456789"
UID = "6462464730849083501"


async def post(session: aiohttp.ClientSession, port: int, body: Any, key: str | None = KEY) -> tuple[int, Any]:
    headers = {"User-Agent": "shop-backend/1.0"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with session.post(f"http://127.0.0.1:{port}/band/identify.json", json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_the_key_and_the_body_are_checked_and_browsers_cannot_send_identity_events(own_nats: NatsServer) -> None:
    async with running_edge(own_nats.url, project_keys={KEY: 7}) as (client, _), running_edge(own_nats.url) as (keyless, _):
        for body, key, status, words in (
            ({"uid": UID, "user_id": "42"}, None, 401, "Authorization: Bearer"),
            ({"uid": UID, "user_id": "42"}, "wrong-key-wrong-key-0000", 403, "not one of EDGE_PROJECT_KEYS"),
            ({"uid": UID, "user_id": ""}, KEY, 400, "user id is empty"),
            ({"uid": UID, "user_id": "x" * 10_000}, KEY, 400, "10000 characters"),
            ({"uid": "abc", "user_id": "42"}, KEY, 400, "not a visitor uid"),
            ({"user_id": "42"}, KEY, 400, "not a visitor uid"),
            ({"uid": UID, "user_id": "42", "traits": ["plan"]}, KEY, 400, "traits must be an object"),
            ({"previous_id": "", "user_id": "42"}, KEY, 400, "empty"),
        ):
            headers = {"User-Agent": "shop-backend/1.0", **({"Authorization": f"Bearer {key}"} if key else {})}
            resp = await client.post("/band/identify.json", json=body, headers=headers)
            assert resp.status == status and words in (await resp.json())["message"], (body, await resp.text())
        resp = await keyless.post("/band/identify.json", json={"uid": UID, "user_id": "42"},
                                  headers={"Authorization": f"Bearer {KEY}"})
        assert resp.status == 403 and "EDGE_PROJECT_KEYS" in (await resp.json())["message"]
        # a browser (or anyone without the key) cannot write the identity service through the public paths
        for path in ("/identity/merge", "/band/identity/identify", "/identity/split.json"):
            resp = await client.post(path, json={"a": "user:1", "b": "user:2"}, headers={"User-Agent": BROWSER})
            assert resp.status == 403 and "/band/identify.json" in (await resp.json())["message"], path
        ok = await client.post("/band/identify.json", json={"uid": UID, "user_id": "42", "traits": {"plan": "pro"}},
                               headers={"Authorization": f"Bearer {KEY}", "User-Agent": "python-requests/2.31"})
        assert ok.status == 200, await ok.text()  # a backend's agent is no reason to drop it


@pytest.mark.slow
async def test_identifies_of_one_uid_through_two_edges_make_one_person(tmp_path: Path, own_nats: NatsServer,
                                                                       store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url)
    one, port_one = start_edge(own_nats.url, tmp_path, name="one", EDGE_PROJECT_KEYS=f"{KEY}:7")
    two, port_two = start_edge(own_nats.url, tmp_path, name="two", EDGE_PROJECT_KEYS=f"{KEY}:7")
    try:
        async with aiohttp.ClientSession() as session:
            async def up(port: int) -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(lambda: up(port_one), 30, "edge one", procs=[one])
            await wait_for(lambda: up(port_two), 30, "edge two", procs=[two])
            # the same uid logs in as the same user through both edges at once, and as a second user id
            # (the site's email login) through the second, 10 times each
            calls = []
            for n in range(10):
                calls.append(post(session, port_one, {"uid": UID, "user_id": "42", "traits": {"n": n}}))
                calls.append(post(session, port_two, {"uid": UID, "user_id": "42"}))
                calls.append(post(session, port_two, {"uid": UID, "user_id": "a@example.com"}))
            answers = await asyncio.gather(*calls)
            assert all(status == 200 for status, _ in answers), answers

            async def one_person() -> bool:
                try:
                    rows = await store.query("SELECT identifier, person_id FROM stats.identities FINAL ORDER BY identifier")
                except RPCError:
                    return False
                return rows == [{"identifier": "uid:" + UID, "person_id": int(UID)},
                                {"identifier": "user:42", "person_id": int(UID)},
                                {"identifier": "user:a@example.com", "person_id": int(UID)}]

            await wait_for(one_person, 60, "one person of three identifiers", procs=[proc])
            # two joins, whichever edge won each race; every call in the stream; traits of the project's calls
            async def all_there() -> bool:
                rows = await store.query("SELECT count() AS n FROM stats.webhooks WHERE service = 'identity'")
                return rows == [{"n": 30}]

            await wait_for(all_there, 60, "30 identity events", procs=[proc])
            log = await store.query("SELECT action, a, b, winner FROM stats.identity_log ORDER BY stream_seq")
            assert sorted(r["b"] for r in log) == ["user:42", "user:a@example.com"]
            assert {r["winner"] for r in log} == {int(UID)}
            projects = await store.query("SELECT DISTINCT projectId FROM stats.webhooks WHERE service = 'identity'")
            assert projects == [{"projectId": 7}]
            traits = await store.query("SELECT count() AS n FROM stats.person_traits WHERE key = 'n'")
            assert traits == [{"n": 10}]
    finally:
        for p in (one, two):
            p.stop()
        assert proc.stop() == 0, proc.text()[-3000:]
