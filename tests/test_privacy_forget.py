"""``band privacy forget`` and ``export`` as an operator runs them: a real edge taking hits
from a background task, a ``band store`` process ingesting them into chDB, a real
nats-server, Redis when this machine has one. What the test counts itself, before,
must equal what the report says was deleted; afterwards nothing of the person is left
anywhere, a replay brings nothing back, and a new hit of theirs is dropped and counted."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.fakes import BROWSER, running_edge
from support.poll import wait_for
from support.processes import Proc
from support.store import counted, event, publish, start_store, store_check
from test_store_import import band_import, summary, write_lines

from band import store, wire
from band._runtime.stream import ensure_dlq_stream
from band.cli.natsserver import NatsServer

pytest.importorskip("chdb")

A, B = "6462464730849083392", "6462464730849083999"  # two browsers of one person, joined by a user id
USER = "user-42"
OTHERS = [str(6_500_000_000_000_000_000 + n) for n in range(20)]
REDIS_URL = "redis://127.0.0.1:6379/15"
CLI = "import sys; from band.privacy.cli import main; sys.exit(main(sys.argv[1:]))"


async def _redis() -> Any:
    """A Redis client on a test database, or ``None`` without a Redis here."""
    try:
        import redis.asyncio as aioredis
    except ImportError:
        return None
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception:  # no server: the Redis part is skipped
        await client.aclose()
        return None
    return client


async def privacy(url: str, *args: str) -> tuple[int, str, str]:
    """``band privacy ARGS`` in a process of its own: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CLI, *args, "--nats", url,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def theirs_in(js: Any, stream: str, uids: set[str]) -> list[int]:
    """The sequences of ``stream`` whose event names one of ``uids`` or the user id (read one by one)."""
    try:
        state = (await js.stream_info(stream)).state
    except Exception:  # no such stream: nothing in it
        return []
    found = []
    for seq in range(state.first_seq, state.last_seq + 1):
        try:
            raw = await js.get_msg(stream, seq)
        except Exception:  # deleted
            continue
        event = json.loads(raw.data)
        user = ((event.get("data") or {}).get("user") or {}).get("id")
        if event.get("uid") in uids or user == USER:
            found.append(seq)
    return found


IDENTIFIERS = f"('uid:{A}', 'uid:{B}', 'user:{USER}')"


async def identity_rows() -> dict[str, int]:
    """The person's rows in the identity graph's tables."""
    wheres = {"identities": f"identifier IN {IDENTIFIERS}", "person_of_uid": f"uid IN ({A}, {B})",
              "person_traits": f"identifier IN {IDENTIFIERS}", "identity_log": f"a IN {IDENTIFIERS} OR b IN {IDENTIFIERS}"}
    out = {}
    for table, where in wheres.items():
        out[table] = int((await store.query(f"SELECT count() AS n FROM stats.{table} WHERE {where}"))[0]["n"])
    return out


async def rows_of(table: str, uids: set[str]) -> int:
    listed = ", ".join(f"'{u}'" for u in sorted(uids))  # digits only
    column = "JSONExtractString(message, 'uid')" if table == "bad_rows" else "toString(uid)"
    rows = await store.query(f"SELECT count() AS n FROM stats.{table} WHERE {column} IN ({listed})")
    return int(rows[0]["n"])


@contextlib.asynccontextmanager
async def flowing(client: Any) -> AsyncIterator[list[int]]:
    """Hits of other people from a background task while the block runs; yields [answered 2xx]."""
    answered = [0]
    stop = asyncio.Event()

    async def send() -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            response = await client.get(f"/track/page?uid={OTHERS[n % len(OTHERS)]}&n={n}", headers={"User-Agent": BROWSER})
            if response.status == 200:
                answered[0] += 1
            await asyncio.sleep(0.005)

    task = asyncio.get_running_loop().create_task(send())
    try:
        yield answered
    finally:
        stop.set()
        await task


@pytest.mark.slow
async def test_forget_under_load_deletes_everything_counted_before_and_drops_what_comes_later(
        tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    redis = await _redis()
    proc = start_store(tmp_path, own_nats.url, STORE_BATCH_SECONDS="0.1", **({"REDIS_URL": REDIS_URL} if redis else {}))
    js = store_client.jetstream()
    try:
        async with running_edge(own_nats.url, stream_storage="file") as (client, _), flowing(client) as answered:
            sent: list[str] = []
            for n in range(30):  # browser A: 30 page views, the last 10 signed in
                body = {"user": {"id": USER}} if n >= 20 else {}
                r = await client.post(f"/track/page?uid={A}&n={n}", json=body, headers={"User-Agent": BROWSER})
                assert r.status == 200
                sent.append((await r.json())["id"])
            for n in range(5):  # browser B, signed in as the same user: the same person
                r = await client.post(f"/track/page?uid={B}&n={n}", json={"user": {"id": USER}}, headers={"User-Agent": BROWSER})
                sent.append((await r.json())["id"])
            r = await client.post(f"/track/page?uid={A}", json={"page": {"title": "t" * 100_000}},
                                  headers={"User-Agent": BROWSER})  # too long for its column: kept in bad_rows
            assert r.status == 200
            await ensure_dlq_stream(js)
            letter = {"key": "in.gen.track.page", "service": "track", "name": "page", "uid": A, "data": {}, "id": "1"}
            await store_client.publish(wire.dlq_subject("mailer"), wire.encode(letter))  # a listener gave up on it
            await store_client.publish(wire.dlq_subject("mailer"), wire.encode({**letter, "uid": OTHERS[0]}))
            if redis:
                for uid in (A, B, OTHERS[0]):
                    await redis.hset(f"s:{uid}", "segment", "buyer")
            person = {A, B}
            await counted(35, proc, f"SELECT count() AS n FROM stats.events WHERE uid IN ({A}, {B})")
            await counted(1, proc, "SELECT count() AS n FROM stats.bad_rows")

            # what is there, counted by the test itself
            before = {t: await rows_of(t, person) for t in ("events", "bad_rows")}
            graph = await identity_rows()
            assert graph["identities"] == 3 and graph["person_of_uid"] >= 1, graph
            before |= {t: n for t, n in graph.items() if n}
            in_stream = await theirs_in(js, wire.STREAM, person)
            assert before["events"] == 35 and before["bad_rows"] == 1 and len(in_stream) == 36
            code, out, err = await privacy(own_nats.url, "export", "--user-id", USER)
            assert code == 0, err
            exported = [json.loads(line) for line in out.splitlines()]
            assert sorted(str(x["row"]["id"]) for x in exported if x["table"] == "events") == sorted(sent)
            assert Counter(x["table"] for x in exported) == before

            code, out, err = await privacy(own_nats.url, "forget", "--uid", A, "--yes", "--json")
            assert code == 0, err + proc.text()[-3000:]
            report = json.loads(out)
            assert report["rows"] == before, report
            assert report["stream"] == len(in_stream), report
            assert report["dead_letters"] == 1, report
            assert report["redis"] == (2 if redis else None), report
            assert report["tombstones"] == report["identifiers"] == 3, report  # uid:A, uid:B, user:user-42

            for table in ("events", "bad_rows", "activity", "webhooks", "failed_events"):
                assert await rows_of(table, person) == 0, table
            assert await identity_rows() == dict.fromkeys(graph, 0)
            assert await theirs_in(js, wire.STREAM, person) == []
            assert len(await theirs_in(js, wire.DLQ_STREAM, {OTHERS[0]})) == 1  # another's dead letter stays
            assert await theirs_in(js, wire.DLQ_STREAM, person) == []
            if redis:
                assert await redis.exists(f"s:{A}", f"s:{B}") == 0 and await redis.exists(f"s:{OTHERS[0]}") == 1

            # a hit of theirs arriving later: dropped by the store, counted, and gone from the stream too
            r = await client.post(f"/track/page?uid={B}", json={"user": {"id": USER}}, headers={"User-Agent": BROWSER})
            assert r.status == 200

            async def dropped() -> bool:
                return int((await store_client_call("status"))["forgotten_dropped"]) == 1

            await wait_for(dropped, 30, "the late hit dropped", procs=[proc])
            await wait_for(lambda: _none(js, person), 30, "the late hit deleted from the stream", procs=[proc])

            assert await rows_of("events", person) == 0
            assert await identity_rows() == dict.fromkeys(graph, 0)  # nor did it join anything in the graph again
            again = json.loads((await privacy(own_nats.url, "forget", "--uid", A, "--yes", "--json"))[1])
            assert (again["rows_total"], again["stream"], again["dead_letters"], again["tombstones"]) == (0, 0, 0, 0), again
            assert again["redis"] in (0, None)

        # no replay brings them back, and every other hit answered 2xx is stored once
        replay = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "band", "store", "replay", "--nats",
                                                          own_nats.url], capture_output=True, text=True, timeout=300)
        assert replay.returncode == 0, replay.stderr
        assert await rows_of("events", person) == 0 and await rows_of("bad_rows", person) == 0
        await counted(answered[0], proc, f"SELECT count() AS n FROM stats.events WHERE uid NOT IN ({A}, {B})")
        code, out = await store_check(own_nats.url)  # what is left of the stream is stored, once
        assert code == 0 and "missing 0, duplicated 0, pending 0" in out, out
        audit = await store.query("SELECT action, by, length(tombstones) AS n, counts FROM stats.privacy_log ORDER BY at")
        assert [(a["action"], a["n"]) for a in audit] == [("forget", 3), ("forget", 1)]
        assert all(A not in json.dumps(a) and USER not in json.dumps(a) for a in audit), audit  # no personal data
    finally:
        if redis:
            await redis.delete(*[f"s:{u}" for u in (A, B, OTHERS[0])])
            await redis.aclose()
        assert proc.stop() == 0, proc.text()[-3000:]


async def _none(js: Any, person: set[str]) -> bool:
    return await theirs_in(js, wire.STREAM, person) == []


async def test_events_not_yet_stored_are_found_above_the_mark_and_never_stored(
        tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    # a batch waits 4 s before it is written; deleted messages are overwritten on disk
    proc = start_store(tmp_path, own_nats.url, STORE_BATCH_SECONDS="4", BAND_FORGET_ERASE="true")
    js = store_client.jetstream()
    try:
        await publish(store_client, [{**event(n), "uid": A} for n in range(3)])
        await counted(3, proc)
        await publish(store_client, [{**event(n), "uid": A} for n in range(3, 5)] + [{**event(9), "uid": OTHERS[0]}])  # held in the next batch
        # by person id: a uid never identified is its own person
        assert await store_client_call("forget", person=A, by="test", wait=0) == {"running": True, "seconds": 0.0}
        report = await store_client_call("forget", person=A, by="test", timeout__=60)  # the same call follows it
        assert (report["rows"], report["stream_stored"], report["stream_unstored"]) == ({"events": 3}, 3, 2), report
        assert await theirs_in(js, wire.STREAM, {A}) == []
        await counted(1, proc)  # the other person's event of that batch, and none of theirs
        assert await rows_of("events", {A}) == 0
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


async def test_forget_refuses_unclear_requests_and_asks_before_deleting(
        tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    proc: Proc = start_store(tmp_path, own_nats.url)
    try:
        await counted(0, proc)
        with pytest.raises(Exception, match="exactly one of uid, user_id, person"):
            await store_client_call("forget", uid=A, user_id=USER)
        with pytest.raises(Exception, match="not a visitor uid"):
            await store_client_call("forget", uid="abc")
        code, _, err = await privacy(own_nats.url, "forget", "--uid", A)  # no terminal to ask on, no --yes
        assert code == 2 and "not confirmed; nothing was deleted" in err
        assert await store.query("SELECT count() AS n FROM stats.tombstones") == [{"n": 0}]
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


async def store_client_call(method: str, **params: Any) -> Any:
    from band import current_app

    return await current_app().rpc.request("store", method, **params)


async def test_the_panel_forgets_after_the_value_is_typed_again(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    import aiohttp

    from band.cli.ports import free_port
    from band.panel.app import running
    from band.panel.config import PanelConfig

    token = "forget-token-0123456789"
    proc = start_store(tmp_path, own_nats.url)
    config = PanelConfig(port=free_port(), nats_url=own_nats.url, token=token, interval_s=0.5, edge_urls=())
    try:
        await publish(store_client, [event(n) for n in range(4)] + [{**event(9), "uid": OTHERS[0]}])
        await counted(5, proc)
        async with running(config) as base, aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            for body, words in (({"uid": A}, "not confirmed"), ({"uid": A, "confirm": A[:-1]}, "not confirmed"),
                                ({"uid": "12; DROP"}, "10 to 22 digits"), ([A], "an object")):
                async with http.post(f"{base}/api/forget", json=body) as resp:
                    assert resp.status == 400 and words in (await resp.json())["error"], body
            assert await rows_of("events", {A}) == 4
            async with http.post(f"{base}/api/forget", json={"uid": A, "confirm": A}) as resp:
                assert resp.status == 200, await resp.text()
                report = await resp.json()
        assert (report["rows"], report["stream"]) == ({"events": 4}, 4), report
        assert await rows_of("events", {A}) == 0 and await rows_of("events", {OTHERS[0]}) == 1
        audit = await store.query("SELECT by FROM stats.privacy_log")
        assert audit == [{"by": "panel"}]
        # importing their events again (a backup, say) stores none of them
        path = write_lines(tmp_path / "back.jsonl", [event(n) for n in range(4)] + [{**event(20), "uid": OTHERS[1]}])
        back = await asyncio.to_thread(band_import, str(path), "--nats", own_nats.url, cwd=tmp_path)
        assert summary(back) == "read 5, stored 1, skipped 0 (already stored), bad 4", back.stdout + back.stderr
        assert "line 1: a forgotten person's event" in back.stderr
        assert await rows_of("events", {A}) == 0 and await rows_of("events", {OTHERS[1]}) == 1
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]


def test_band_privacy_is_registered_and_names_one_person(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import tomllib

    from band.cli.parser import Commands
    from band.privacy import cli, command

    root = Path(__file__).resolve().parents[1]
    entry = tomllib.loads((root / "pyproject.toml").read_text())["project"]["entry-points"]["band.commands"]["privacy"]
    assert entry == "band.privacy.command:register"
    commands = Commands(argparse.ArgumentParser().add_subparsers())
    command.register(commands)
    assert "privacy" in commands.own_parsers and commands.synopses[0][0].startswith("band privacy [forget|export]")
    for argv in (["forget"], ["forget", "--uid", "1", "--user-id", "x"], ["export"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
    assert "one of the arguments --uid --user-id --person is required" in capsys.readouterr().err


@pytest.mark.slow
async def test_the_forget_button_in_a_browser(tmp_path: Path, own_nats: NatsServer, store_client: Any) -> None:
    """Headless Chromium (the system's) on the User page: the button asks for the value again,
    a wrong answer deletes nothing, the right one shows the report."""
    playwright_api = pytest.importorskip("playwright.async_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    from band.cli.ports import free_port
    from band.panel.app import running
    from band.panel.config import PanelConfig

    token = "forget-token-0123456789"
    proc = start_store(tmp_path, own_nats.url)
    config = PanelConfig(port=free_port(), nats_url=own_nats.url, token=token, interval_s=0.5, edge_urls=())
    try:
        await publish(store_client, [event(n) for n in range(3)])
        await counted(3, proc)
        async with running(config) as base, playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
            try:
                page = await browser.new_page()
                page.set_default_timeout(60_000)
                await page.goto(f"{base}/login")
                await page.fill("input[name=token]", token)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{base}/")
                await page.goto(f"{base}/#user")
                await page.fill("#user-id", A)
                await page.click("#user-form button[type=submit]")
                await page.locator("#person-title", has_text="Person ").wait_for()
                await page.locator("#user-status", has_text="counted by").wait_for()  # the page done: its history no longer writes the status
                person = await page.locator("#person").get_attribute("data-person")
                assert person and person.isdigit()
                answers = iter([person[:-1], person])  # first mistyped, then right
                page.on("dialog", lambda d: asyncio.ensure_future(d.accept(next(answers))))
                await page.click("#user-forget")
                await page.locator("#user-status", has_text="not confirmed").wait_for()
                assert await rows_of("events", {A}) == 3
                await page.click("#user-forget")
                await page.locator("#user-status", has_text="forgotten: 3 rows, 3 stream messages").wait_for()
            finally:
                await browser.close()
        assert await rows_of("events", {A}) == 0
    finally:
        assert proc.stop() == 0, proc.text()[-3000:]
