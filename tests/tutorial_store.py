"""Generated events in a real store, and the recipes' SQL asked of it over RPC.

The whole store path: ``band demo --jsonl - | band store import -`` writes the events
through the store's own config, tables, row builder and insert, as the tutorials say; then the stock store service runs (``band run`` of
band/store/service, on a nats-server of its own so other tests' events stay out) and every
recipe is asked of it with ``store.query`` over RPC, read-only, as ``band sql`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from band.cli.natsserver import NatsServer
from band.demo import generate

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "examples" / "recipes"
START = dt.date(2026, 11, 1)
SEED, VISITORS, DAYS = 1, 500, 14  # the docs' samples use these
CLI = "band sql --format json"
BOTS_IN = "counting bots"  # the key suffix of a recipe's answer without its bot filters
BY_COOKIE = "by cookie"  # the key suffix of a recipe's answer counted by cookie (by=cookie; the plain key is by=person)
QUERIES = ROOT / "examples" / "queries"
NEW_VS_RETURNING = str(QUERIES / "new_vs_returning.sql")


def events(seed: int = SEED, visitors: int = VISITORS, days: int = DAYS) -> list[dict[str, Any]]:
    return _events(seed, visitors, days)


@functools.lru_cache(maxsize=4)
def _events(seed: int, visitors: int, days: int) -> list[dict[str, Any]]:
    return generate(seed, visitors, days, START)


def everyday() -> tuple[str, ...]:
    """The recipes over the demo events alone (1-3 and 9 need their own tables, services and hits),
    and the new-vs-returning report."""
    recipes = [str(p) for p in RECIPES.glob("*.sql") if p.name.startswith(("04-", "05-", "06-", "07-", "08-", "10-"))]
    return tuple(sorted([*recipes, NEW_VS_RETURNING]))


def counts_by(sql: str) -> bool:
    """Whether a recipe asks who to count ({by:String}: person or cookie)."""
    return "{by:String}" in sql


def cross_device_buyer(seed: int = SEED, visitors: int = VISITORS, days: int = DAYS) -> tuple[str, str, str]:
    """(phone uid, laptop uid, user id) of the first person who bought on a second device."""
    evs = events(seed, visitors, days)
    uids: dict[str, list[str]] = {}
    for e in evs:
        user_id = e["data"]["user"].get("id")
        if user_id and e["uid"] not in uids.setdefault(user_id, []):
            uids[user_id].append(e["uid"])
    buyers = {e["uid"] for e in evs if e["name"] == "purchase"}
    user_id = next(u for u, mine in uids.items() if len(mine) == 2 and mine[1] in buyers)
    return uids[user_id][0], uids[user_id][1], user_id


def history_visitor(seed: int = SEED, visitors: int = VISITORS, days: int = DAYS) -> tuple[str, str]:
    """(uid, user id) of the identified buyer on one device with the most sessions: the history page's example."""
    evs = events(seed, visitors, days)
    sessions: dict[str, int] = {}
    for e in evs:
        if e["name"] == "session":
            sessions[e["uid"]] = sessions.get(e["uid"], 0) + 1
    buyers = {e["uid"] for e in evs if e["name"] == "purchase"}
    ids = {e["uid"]: e["data"]["data"]["user_id"] for e in evs if e["name"] == "identify"}
    devices = {user_id: sum(1 for v in ids.values() if v == user_id) for user_id in ids.values()}
    uid = max((u for u in ids if u in buyers and devices[ids[u]] == 1), key=lambda u: (sessions[u], u))
    return uid, ids[uid]


def _params_for(name: str, seed: int, visitors: int, days: int, by: str = "person") -> dict[str, Any] | None:
    uid, user_id = history_visitor(seed, visitors, days)
    params: dict[str, Any] = {"04-user-history.sql": {"uid": uid}, "04-uids-of-user.sql": {"user_id": user_id},
                              "new_vs_returning.sql": {"since": START.isoformat()}}.get(Path(name).name, {})
    if counts_by(Path(name).read_text()):
        params["by"] = by
    return params or None


def with_bots(sql: str) -> str:
    """A recipe without its ``bot = ''`` filters: what it would answer counting bots."""
    return re.sub(r"\b(\w+\.)?bot = ''", "1 = 1", sql)


async def _ask(url: str, files: tuple[str, ...], svcs: list[subprocess.Popen[str]], seed: int, visitors: int, days: int,
               unfiltered: bool = False) -> dict[str, Any]:
    from band._core.rpc import RPC
    from band._runtime.connect import connect
    from band.errors import RPCError

    nc = await connect(url, name="tutorial-tests", max_reconnect_attempts=0)
    rpc = RPC(lambda: nc)
    try:
        await store_ready(rpc, svcs)
        await identify_people(rpc, _events(seed, visitors, days))
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # and the history service answers
            try:
                await rpc.request("history", "timeline", timeout__=2, uid="1")
                break
            except RPCError:
                assert asyncio.get_running_loop().time() < deadline, "the history service did not answer"
                await asyncio.sleep(0.2)
        out: dict[str, Any] = {}
        for name in files:
            out[name] = await rpc.request("store", "query", timeout__=60, sql=Path(name).read_text(),
                                          params=_params_for(name, seed, visitors, days))
            if counts_by(Path(name).read_text()):
                out[f"{name} {BY_COOKIE}"] = await rpc.request("store", "query", timeout__=60, sql=Path(name).read_text(),
                                                               params=_params_for(name, seed, visitors, days, "cookie"))
            if unfiltered:
                out[f"{name} {BOTS_IN}"] = await rpc.request("store", "query", timeout__=60, sql=with_bots(Path(name).read_text()),
                                                             params=_params_for(name, seed, visitors, days))
        uid, user_id = history_visitor(seed, visitors, days)
        out["history uid"] = await rpc.request("history", "timeline", timeout__=60, uid=uid)
        out["history user_id"] = await rpc.request("history", "timeline", timeout__=60, user_id=user_id)
        phone, _, person_user = cross_device_buyer(seed, visitors, days)
        out["history person"] = await rpc.request("history", "timeline", timeout__=60, uid=phone)
        out["history person user_id"] = await rpc.request("history", "timeline", timeout__=60, user_id=person_user)
        out["history person by cookie"] = await rpc.request("history", "timeline", timeout__=60, uid=phone, by="cookie")
        try:
            await rpc.request("history", "timeline", timeout__=10)
            out["history nothing"] = None
        except RPCError as exc:
            out["history nothing"] = [exc.code, exc.message]
        return out
    finally:
        await nc.close()


@contextlib.contextmanager
def stack(seed: int, visitors: int, days: int, services: list[Path], env: dict[str, str] | None = None, bots: int = 0
          ) -> Iterator[tuple[str, list[subprocess.Popen[str]]]]:
    """The demo events in a store (with ``bots`` bot visitors mixed in), a nats-server of its
    own, the store service and ``services``.

    Yields the NATS URL and the service processes; stops them all on exit.
    """
    pytest.importorskip("chdb")
    import band.store

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        # as the tutorials say: band demo --jsonl - | band store import - (--direct: no NATS asked)
        demo = subprocess.Popen([sys.executable, "-m", "band", "demo", "--jsonl", "-", "--seed", str(seed), "--visitors", str(visitors),
                                 "--days", str(days), "--start", START.isoformat(), "--bots", str(bots)], cwd=tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        fill = subprocess.run([sys.executable, "-m", "band", "store", "import", "-", "--direct", str(store)], stdin=demo.stdout,
                              cwd=tmp, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
        assert demo.stdout is not None
        demo.stdout.close()
        assert demo.wait(timeout=60) == 0 and fill.returncode == 0, fill.stderr[-4000:]
        with NatsServer(store_dir=Path(tmp) / "js") as nats:
            full_env = {**os.environ, "STORE_DIR": str(store), "NATS_URL": nats.url, **(env or {})}
            log_path = Path(tmp) / "services.log"
            log = open(log_path, "w")
            svcs = [subprocess.Popen([sys.executable, "-m", "band", "run", str(path), "--nats", nats.url], cwd=tmp, env=full_env,
                                     stdout=subprocess.DEVNULL, stderr=log, text=True)
                    for path in [Path(band.store.__file__).parent / "service", *services]]
            try:
                yield nats.url, svcs
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the services said: {log_path.read_text()[-3000:]}") from None
            finally:
                for svc in svcs:
                    svc.terminate()
                for svc in svcs:
                    try:
                        svc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        svc.kill()
                        svc.wait()
                log.close()


async def identify_people(rpc: Any, evs: list[dict[str, Any]]) -> int:
    """Every (uid, user id) the events logged in with, told to the store's ``identify`` as a backend
    would (``band store import`` writes rows, not the identity graph the live writer builds).

    Each user id's uids in the order they first carried it, so the older uid's person wins as in
    the stream; different user ids at once. Each call returns once its change is stored. How many."""
    pairs: dict[str, list[str]] = {}
    for e in evs:
        user_id = e["data"].get("user", {}).get("id")
        if user_id and e["uid"] not in pairs.setdefault(user_id, []):
            pairs[user_id].append(e["uid"])

    async def one(user_id: str, uids: list[str]) -> None:
        for uid in uids:
            await rpc.request("store", "identify", timeout__=60, uid=uid, user_id=user_id)

    for start in range(0, len(pairs), 16):
        await asyncio.gather(*(one(u, uids) for u, uids in list(pairs.items())[start:start + 16]))
    return sum(len(uids) for uids in pairs.values())


async def store_ready(rpc: Any, svcs: list[subprocess.Popen[str]]) -> None:
    """Until the store service answers status with state "writing"."""
    from band.errors import RPCError

    deadline = asyncio.get_running_loop().time() + 60
    while True:
        assert all(svc.poll() is None for svc in svcs), "a service exited"
        try:
            if (await rpc.request("store", "status", timeout__=2))["state"] == "writing":
                return
        except RPCError:
            pass
        assert asyncio.get_running_loop().time() < deadline, "the store did not become ready"
        await asyncio.sleep(0.2)


@functools.lru_cache(maxsize=4)
def _run(seed: int, visitors: int, days: int, files: tuple[str, ...], bots: int = 0) -> dict[str, Any]:
    with stack(seed, visitors, days, [RECIPES / "history"], bots=bots) as (url, svcs):
        answers = asyncio.run(_ask(url, files, svcs, seed, visitors, days, unfiltered=bots > 0))
        # the documented command too: band sql --format json, as the Markov page pipes it
        cli = subprocess.run([sys.executable, "-m", "band", "sql", "--format", "json", "--nats", url,
                              (RECIPES / "06-markov-transitions.sql").read_text()], capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        answers[CLI] = cli.stdout
        # and a recipe that counts by person, as its first lines say to run it
        cli = subprocess.run([sys.executable, "-m", "band", "sql", "--format", "json", "--nats", url,
                              (RECIPES / "05-attribution.sql").read_text(), "by=cookie"], capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stderr
        answers[f"{CLI} by=cookie"] = cli.stdout
        return answers


def answer(recipe: str, seed: int = SEED, visitors: int = VISITORS, days: int = DAYS) -> dict[str, Any]:
    """``store.query``'s whole answer (columns and rows) for ``examples/recipes/<recipe>``."""
    every = everyday()
    return dict(_run(seed, visitors, days, every)[str(RECIPES / recipe)])


def query_by(recipe: str, by: str) -> list[dict[str, Any]]:
    """The rows of ``examples/recipes/<recipe>`` (or a path) counted ``by`` person or cookie."""
    name = recipe if "/" in recipe else str(RECIPES / recipe)
    return list(_run(SEED, VISITORS, DAYS, everyday())[name if by == "person" else f"{name} {BY_COOKIE}"]["rows"])


def answers(key: str) -> Any:
    """Another answer from the run: ``history uid``, ``history user_id``, ``history nothing``, ``history person``,
    ``history person user_id``, ``history person by cookie``."""
    every = everyday()
    return _run(SEED, VISITORS, DAYS, every)[key]


def band_sql_json_markov() -> str:
    """What ``band sql --format json "$(cat 06-markov-transitions.sql)"`` printed."""
    every = everyday()
    return str(_run(SEED, VISITORS, DAYS, every)[CLI])


def with_bots_mixed_in(bots: int) -> dict[str, Any]:
    """Every answer of a run whose store also holds ``bots`` bot visitors' events; each recipe
    also as ``"<file> counting bots"``, asked without its ``bot = ''`` filters."""
    return _run(SEED, VISITORS, DAYS, everyday(), bots)


def query(recipe: str, seed: int = SEED, visitors: int = VISITORS, days: int = DAYS) -> list[dict[str, Any]]:
    """The rows of ``examples/recipes/<recipe>`` over the generated events, from the store service."""
    every = everyday()
    return list(_run(seed, visitors, days, every)[str(RECIPES / recipe)]["rows"])
