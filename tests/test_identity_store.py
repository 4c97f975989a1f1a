"""The identity graph in a real store (band store, chDB, nats-server): identify, alias,
merge, split, wrong input, replay and a crash, each checked against a plain-Python
computation of who is whom (connected components; a person's id is the uid that entered
first)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from support.poll import wait_for
from support.processes import Proc
from support.store import counted, publish, start_store

from band import RPCError, identity, store
from band.cli.natsserver import NatsServer

pytest.importorskip("chdb")

PHONE, LAPTOP, OTHER = "6462464730849083401", "6462464730849083402", "6462464730849083403"


def hit(n: int, uid: str, **data: Any) -> dict[str, Any]:
    return {"key": "in.gen.track.page", "service": "track", "name": "page", "channel": "http", "projectId": 0,
            "uid": uid, "td": {"ip": "127.0.0.1", "ua": "test"}, "data": {"page": {"url": f"https://x.test/{n}"}, **data},
            "id": str(7_100_000_000_000_000 + n), "time": 1_700_000_000_000 + n * 1000}


def components(joins: list[tuple[str, str]]) -> dict[str, int]:
    """Who is whom, computed plainly: the connected components of the joins, each named by
    its first-entered uid (joins are in stream order; within a join, its first identifier)."""
    order: dict[str, int] = {}
    edges: dict[str, set[str]] = defaultdict(set)
    for a, b in joins:
        for name in (a, b):
            order.setdefault(name, len(order))
        edges[a].add(b)
        edges[b].add(a)
    person: dict[str, int] = {}
    for start in order:
        if start in person:
            continue
        seen, todo = {start}, [start]
        while todo:
            for nxt in edges[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        first = min(seen, key=order.__getitem__)
        assert first.startswith("uid:"), "the tests' components start with a uid"
        for name in seen:
            person[name] = int(first[4:])
    return person


async def graph() -> dict[str, int]:
    rows = await store.query("SELECT identifier, person_id FROM stats.identities FINAL")
    return {r["identifier"]: int(r["person_id"]) for r in rows}


async def snapshot() -> dict[str, list[Any]]:
    """The four tables' content, comparable across stores (rows sorted)."""
    out = {}
    for table, sql in (("identities", "SELECT * FROM stats.identities FINAL"),
                       ("person_of_uid", "SELECT * FROM stats.person_of_uid FINAL"),
                       ("person_traits", "SELECT * FROM stats.person_traits"),
                       ("identity_log", "SELECT * FROM stats.identity_log")):
        rows = await store.query(sql)
        out[table] = sorted(rows, key=repr)
    return out


async def stored_graph(expected: dict[str, int], proc: Proc) -> None:
    last: dict[str, int] = {}

    async def there() -> bool:
        nonlocal last
        try:
            last = await graph()
        except RPCError:
            return False
        return last == expected

    try:
        await wait_for(there, 60, f"the graph of {len(expected)} identifiers", procs=[proc])
    except AssertionError:
        wrong = {k: (last.get(k), v) for k, v in expected.items() if last.get(k) != v}
        raise AssertionError(f"{len(wrong)} identifiers differ (stored, expected): {dict(list(wrong.items())[:8])}; "
                             f"{len(set(last) - set(expected))} unexpected") from None


async def test_two_devices_then_alias_merge_split_and_wrong_input(tmp_path: Path, own_nats: NatsServer,
                                                                  store_client: Any) -> None:
    proc = start_store(tmp_path, own_nats.url)
    try:
        # the phone: logged in once (the SDK stamps user.id), then anonymous visits; the laptop: anonymous
        await publish(store_client, [hit(0, PHONE, user={"id": "42"}), *[hit(n, PHONE) for n in range(1, 4)],
                                     *[hit(n, LAPTOP) for n in range(4, 9)], hit(9, OTHER)])
        await counted(10, proc)
        await stored_graph(components([("uid:" + PHONE, "user:42")]), proc)
        # the login on the laptop, from a backend
        answer = await identity.identify(LAPTOP, "42", {"plan": "pro", "age": 31})
        assert answer["applied"] is True and answer["person_id"] == int(PHONE)
        joins = [("uid:" + PHONE, "user:42"), ("uid:" + LAPTOP, "user:42")]
        assert await graph() == components(joins)
        by_person = await store.query("SELECT person_id, count() AS n, uniqExact(uid) AS devices "
                                      "FROM stats.events_people GROUP BY person_id ORDER BY person_id")
        assert by_person == [{"person_id": int(PHONE), "n": 9, "devices": 2}, {"person_id": int(OTHER), "n": 1, "devices": 1}]
        shown = await identity.show("uid:" + LAPTOP)
        assert shown["person_id"] == int(PHONE) and sorted(shown["uids"]) == sorted([int(PHONE), int(LAPTOP)])
        assert shown["traits"] == {"plan": "pro", "age": "31"}
        assert [(m["action"], m["a"], m["b"], m["winner"]) for m in shown["merges"]] == [
            ("identify", "uid:" + PHONE, "user:42", int(PHONE)), ("identify", "uid:" + LAPTOP, "user:42", int(PHONE))]
        assert shown["merges"][1]["loser"] == int(LAPTOP)
        assert shown["merges"][0]["by"] == "track" and shown["merges"][1]["by"] == "identity"

        # an alias chain: old-login -> user:42, 7 (bare digits: a uid) -> old-login
        await identity.alias("old-login", "user:42")
        await identity.alias("7", "old-login")
        joins += [("user:old-login", "user:42"), ("uid:7", "user:old-login")]
        assert await graph() == components(joins)

        # two known users, merged by the operator: the older (the phone's) id wins
        await identity.identify(OTHER, "99")
        joins.append(("uid:" + OTHER, "user:99"))
        assert await graph() == components(joins)
        merged = await store_client_call(store_client, "merge", a="user:99", b="uid:" + LAPTOP, by="cli")
        assert merged["person_id"] == int(PHONE)
        joins.append(("user:99", "uid:" + LAPTOP))
        assert await graph() == components(joins)
        log = await store.query("SELECT action, a, b, winner, loser, by FROM stats.identity_log WHERE action = 'merge'")
        assert log == [{"action": "merge", "a": "user:99", "b": "uid:" + LAPTOP, "winner": int(PHONE),
                        "loser": int(OTHER), "by": "cli"}]

        # split the wrongly merged uid: it is a person of its own again; the rest keep the phone's id
        await store_client_call(store_client, "split", identifier="uid:" + OTHER, by="cli")
        expected = components(joins)
        expected["uid:" + OTHER] = int(OTHER)
        assert await graph() == expected
        people = await store.query("SELECT uid, any(person_id) AS p FROM stats.events_people GROUP BY uid ORDER BY uid")
        assert {str(r["uid"]): r["p"] for r in people} == {PHONE: int(PHONE), LAPTOP: int(PHONE), OTHER: int(OTHER)}

        # wrong input: a clear 4xx, and the graph is as it was
        for call, code, words in (
            (identity.identify(LAPTOP, ""), 400, "user id is empty"),
            (identity.identify(LAPTOP, "x" * 10_000), 400, "10000 characters"),
            (identity.identify("not-a-uid", "42"), 400, "not a visitor uid"),
            (identity.identify("0", "42"), 400, "not a visitor uid"),
            (identity.identify(LAPTOP, "42", {"": 1}), 400, "trait"),
            (identity.alias("", "42"), 400, "empty"),
            (identity.link(LAPTOP, "fax:123"), 400, "kind:value"),
            (identity.show("user:nobody"), 404, "no person has user:nobody"),
            (store_client_call(store_client, "merge", a="user:nobody", b="user:42"), 404, "no person has"),
            (store_client_call(store_client, "merge", a="user:42", b="uid:" + LAPTOP), 409, "one person already"),
            (store_client_call(store_client, "split", identifier="uid:" + OTHER), 409, "person of its own"),
        ):
            with pytest.raises(RPCError) as refused:
                await call
            assert refused.value.code == code and words in refused.value.message, refused.value.message
        assert await graph() == expected
        # a uid never seen in any event: accepted, a person as any other (its events may come later)
        fresh = await identity.identify("6462464730849083499", "fresh")
        assert fresh["person_id"] == 6462464730849083499
        assert (await identity.show("user:fresh"))["uids"] == [6462464730849083499]

        # from the shell
        code, out, err = await band_cli("identity", "show", "user:42", "--nats", own_nats.url)
        assert code == 0 and json.loads(out) == await identity.show("uid:" + PHONE), err
        code, out, err = await band_cli("identity", "merge", "user:fresh", "user:42", "--nats", own_nats.url)
        assert code == 0 and json.loads(out)["person_id"] == int(PHONE), err
        assert "band identity show user:fresh" in err
        log = await store.query("SELECT by FROM stats.identity_log WHERE action = 'merge' AND a = 'user:fresh'")
        assert log == [{"by": "cli"}]
        code, out, err = await band_cli("identity", "split", "user:nobody", "--nats", own_nats.url)
        assert code == 1 and "no person has user:nobody" in err and "next:" in err
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


async def band_cli(*args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "band", *args], capture_output=True,
                                   text=True, timeout=60)
    return done.returncode, done.stdout, done.stderr


async def store_client_call(nc: Any, method: str, **kwargs: Any) -> Any:
    from band._core.rpc import RPC

    return await RPC(lambda: nc).request("store", method, timeout__=30, **kwargs)


def identify_events(count: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]], int]:
    """Hits and identity events in one stream: ``count`` uids, user ids shared in a pattern
    that joins them in chains, some with traits; the joins in stream order; traits rows."""
    events, joins, traits = [], [], 0
    for n in range(count):
        uid = str(6_462_464_730_849_000_000 + n)
        events.append(hit(1000 + n, uid))
        user = f"u{n // 3}"
        data: dict[str, Any] = {"user_id": user}
        if n % 2:
            data["traits"] = {"n": n}
            traits += 1
        events.append({"key": "in.gen.identity.identify", "service": "identity", "name": "identify", "channel": "rpc",
                       "projectId": 0, "uid": uid, "td": {}, "data": data, "id": str(7_200_000_000_000_000 + n),
                       "time": 1_700_000_100_000 + n})
        joins.append(("uid:" + uid, "user:" + user))
        if n % 10 == 9:  # an alias now and then joins two users' persons
            events.append({"key": "in.gen.identity.alias", "service": "identity", "name": "alias", "channel": "rpc",
                           "projectId": 0, "uid": "", "td": {}, "data": {"previous_id": f"u{n // 3}", "user_id": f"u{n // 3 - 1}"},
                           "id": str(7_300_000_000_000_000 + n), "time": 1_700_000_200_000 + n})
            joins.append((f"user:u{n // 3}", f"user:u{n // 3 - 1}"))
    return events, joins, traits


def expected_log(joins: list[tuple[str, str]]) -> int:
    """How many joins change something (each a log row): a plain union of sets."""
    groups: list[set[str]] = []
    changes = 0
    for a, b in joins:
        ga = next((g for g in groups if a in g), None)
        gb = next((g for g in groups if b in g), None)
        if ga is None:
            ga = {a}
            groups.append(ga)
        if gb is None:
            gb = {b}
            groups.append(gb)
        if ga is not gb:
            ga |= gb
            groups.remove(gb)
            changes += 1
    return changes


@pytest.mark.slow
async def test_a_crash_mid_stream_then_a_replay_into_a_new_store_give_the_same_graph(tmp_path: Path, own_nats: NatsServer,
                                                                                      store_client: Any) -> None:
    events, joins, traits = identify_events(300)
    first = tmp_path / "first"
    first.mkdir()
    proc = start_store(first, own_nats.url, STORE_BATCH_ROWS="40")
    try:
        await publish(store_client, events[: len(events) // 2])

        async def some_written() -> bool:
            try:
                return 0 < len(await graph()) < 400
            except RPCError:
                return False

        await wait_for(some_written, 60, "some identity rows", procs=[proc])
        proc.kill()  # mid-stream: batches fetched, some written, none of them acked for sure
        proc = start_store(first, own_nats.url, STORE_BATCH_ROWS="40")
        await publish(store_client, events[len(events) // 2:])
        await counted(300, proc)
        await stored_graph(components(joins), proc)
        await counted(expected_log(joins), proc, "SELECT count() AS n FROM stats.identity_log")
        await counted(traits, proc, "SELECT count() AS n FROM stats.person_traits")
        # exactly once: no event's rows twice in the log or the traits
        assert await store.query("SELECT count() AS n FROM (SELECT stream_seq, a, b FROM stats.identity_log "
                                 "GROUP BY stream_seq, a, b HAVING count() > 1)") == [{"n": 0}]
        assert await store.query("SELECT count() AS n FROM (SELECT stream_seq, key FROM stats.person_traits "
                                 "GROUP BY stream_seq, key HAVING count() > 1)") == [{"n": 0}]
        before = await snapshot()
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
    # a new store on the same stream: its writer's consumer is past every event, a replay reads them all again
    second = tmp_path / "second"
    second.mkdir()
    proc = start_store(second, own_nats.url)
    try:
        await wait_for(lambda: store_ready(), 60, "the new store answers", procs=[proc])
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "band", "store", "replay", "--nats", own_nats.url],
                                       capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        await counted(300, proc)
        await stored_graph(components(joins), proc)
        await counted(traits, proc, "SELECT count() AS n FROM stats.person_traits")
        await counted(expected_log(joins), proc, "SELECT count() AS n FROM stats.identity_log")
        assert await snapshot() == before
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


async def store_ready() -> bool:
    try:
        await store.query("SELECT 1 AS n", timeout__=2)
    except RPCError:
        return False
    return True
