"""The store's identity methods: check a request, publish its identity event into the
stream (the store applies it in stream order, like any event), wait until it is stored;
and ``identity`` (show): a person as the tables hold it.

Services may not publish events (``in.>``, nats.conf): they ask the store, which may
publish ``in.gen.identity.>`` and nothing else. Each event gets a time-ordered id as its
``Nats-Msg-Id``, so a publish retried after a lost ack is stored once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nats.aio.client import Client

from .. import wire
from .._core.ids import new_id
from .._runtime.stream import ensure_stream
from ..errors import RPCError
from ..wire import IdentifierError
from .backend import Backend, StoreError
from .config import IDENTITIES, IDENTITY_LOG, PERSON_TRAITS
from .identity import Identities
from .identity_graph import natural_id
from .schema import quote

APPLIED_WAIT_S = 10.0  # how long a call waits for its change to be stored before answering


def checked(value: Any, bare: str = "auto", what: str = "identifier") -> str:
    """``value`` as an identifier, or a 400 naming the problem."""
    try:
        return wire.identifier(value, bare)
    except IdentifierError as exc:
        raise RPCError(f"{what}: {exc}", 400) from None


def checked_uid(value: Any) -> str:
    try:
        return wire.uid_identifier(value)
    except IdentifierError as exc:
        raise RPCError(f"uid: {exc}", 400) from None


def user_of(value: Any) -> str:
    """``user_id`` as ``user:<id>`` (a value already written ``user:...`` is kept)."""
    try:
        return wire.user_identifier(value)
    except IdentifierError as exc:
        raise RPCError(f"user_id: {exc}", 400) from None


def checked_traits(traits: Any) -> dict[str, Any] | None:
    problem = wire.traits_problem(traits)
    if problem:
        raise RPCError(problem, 400)
    return dict(traits) if traits is not None else None


def event(action: str, data: dict[str, Any], uid: str = "", project: int = 0, channel: str = "rpc") -> dict[str, Any]:
    """An identity event as the edge would publish it (``uid`` without its ``uid:``)."""
    return {"key": wire.routing_key(wire.IDENTITY_SERVICE, action), "service": wire.IDENTITY_SERVICE, "name": action,
            "channel": channel, "projectId": project, "uid": uid, "td": {}, "data": data, "id": new_id(),
            "time": int(time.time() * 1000)}


async def publish(nc: Client, message: dict[str, Any]) -> int:
    """Into the stream, de-duplicated by the event's id; its stream sequence."""
    js = nc.jetstream()
    await ensure_stream(js)
    ack = await js.publish(message["key"], wire.encode(message), headers={wire.MSG_ID_HEADER: message["id"]},
                           stream=wire.STREAM)
    return int(ack.seq)


async def applied(identities: Identities, seq: int, wait: float = APPLIED_WAIT_S) -> bool:
    """Wait (at most ``wait`` s) until the batch holding ``seq`` is stored with its rows."""
    deadline = time.monotonic() + wait
    while identities.written < seq:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# --- show ----------------------------------------------------------------------------------
def show(backend: Backend, database: str, identifier: str) -> dict[str, Any] | None:
    """The person ``identifier`` belongs to, from the tables (``None``: nobody has it).
    Blocking: run it in the engine's reader thread."""
    db = quote(database)
    ids = f"{db}.{quote(IDENTITIES)}"
    found = backend.select(f"SELECT person_id FROM {ids} FINAL WHERE identifier = {{i:String}}", {"i": identifier})["rows"]
    if not found:
        return _alone(backend, db, identifier)
    person = int(found[0]["person_id"])
    members = backend.select(
        f"SELECT identifier, kind, toString(first_seen) AS first_seen, toString(last_seen) AS last_seen "
        f"FROM {ids} FINAL WHERE person_id = {{p:UInt64}} ORDER BY first_seq, identifier", {"p": person})["rows"]
    names = _texts([m["identifier"] for m in members])
    traits = backend.select(
        f"SELECT key, argMax(value, (at, stream_seq)) AS value FROM {db}.{quote(PERSON_TRAITS)} "
        "WHERE identifier IN {ids:Array(String)} GROUP BY key ORDER BY key", {"ids": names})["rows"]
    merges = backend.select(
        f"SELECT toString(at) AS at, action, a, b, winner, loser, by, event_id, stream_seq FROM {db}.{quote(IDENTITY_LOG)} "
        "WHERE a IN {ids:Array(String)} OR b IN {ids:Array(String)} OR winner = {p:UInt64} OR loser = {p:UInt64} "
        "ORDER BY stream_seq", {"ids": names, "p": person})["rows"]
    return {"person_id": person, "identifiers": members,
            "uids": [int(m["identifier"][4:]) for m in members if m["kind"] == "uid"],
            "traits": {t["key"]: t["value"] for t in traits},
            "merges": [{**m, "winner": int(m["winner"]), "loser": int(m["loser"]), "event_id": int(m["event_id"]),
                        "stream_seq": int(m["stream_seq"])} for m in merges]}


def _texts(values: list[str]) -> str:
    """A list of text as an ``Array(String)`` parameter's ClickHouse literal."""
    return "[" + ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + "]"


def _alone(backend: Backend, db: str, identifier: str) -> dict[str, Any] | None:
    """A uid that never took part in an identity change: a person of its own, seen in events."""
    if not identifier.startswith("uid:"):
        return None
    uid = int(identifier[4:])
    seen = backend.select(f"SELECT count() AS n, toString(toDateTime64(min(dateTime), 3, 'UTC')) AS first_seen, "
                          f"toString(toDateTime64(max(dateTime), 3, 'UTC')) AS last_seen FROM {db}.events "
                          "WHERE uid = {u:UInt64}", {"u": uid})["rows"]
    if not seen or not int(seen[0]["n"]):
        return None
    return {"person_id": natural_id(identifier),
            "identifiers": [{"identifier": identifier, "kind": "uid", "first_seen": seen[0]["first_seen"],
                             "last_seen": seen[0]["last_seen"]}],
            "uids": [uid], "traits": {}, "merges": []}


__all__ = [
    "APPLIED_WAIT_S",
    "Calls",
    "applied",
    "checked",
    "checked_traits",
    "checked_uid",
    "event",
    "publish",
    "show",
    "user_of",
]


class Calls:
    """The methods as the store service exposes them (``band/store/service/main.py``)."""

    def __init__(self, identities: Identities | None, database: str) -> None:
        self.identities = identities
        self.database = database
        self.nc: Client | None = None
        self.engine: Any = None  # set when the store is ready (a writer.Engine)

    def _graph(self) -> Identities:
        if self.identities is None or self.nc is None:
            raise RPCError("this store has no identity tables (its store.yml leaves them out)", 400)
        return self.identities

    async def _send(self, action: str, data: dict[str, Any], uid: str = "") -> dict[str, Any]:
        identities = self._graph()
        assert self.nc is not None
        try:
            seq = await publish(self.nc, event(action, data, uid))
        except Exception as exc:  # noqa: BLE001 - NATS or JetStream away: nothing is known to be stored
            raise RPCError(f"the identity event could not be stored in the stream ({type(exc).__name__}); try again", 503) from None
        done = await applied(identities, seq)
        return {"action": action, "stream_seq": seq, "applied": done}

    async def identify(self, uid: Any, user_id: Any, traits: Any) -> dict[str, Any]:
        uid_id, user = checked_uid(uid), user_of(user_id)
        answer = await self._send("identify", {"user_id": user[5:], "traits": checked_traits(traits) or {}}, uid_id[4:])
        return {**answer, "person_id": self._graph().graph.person_of(uid_id)}

    async def alias(self, previous_id: Any, user_id: Any) -> dict[str, Any]:
        previous, user = checked(previous_id, what="previous_id"), checked(user_id, what="user_id")
        answer = await self._send("alias", {"previous_id": previous, "user_id": user})
        return {**answer, "person_id": self._graph().graph.person_of(user)}

    async def link(self, uid: Any, identifier: Any) -> dict[str, Any]:
        uid_id, other = checked_uid(uid), checked(identifier, "", "identifier")
        answer = await self._send("link", {"identifier": other}, uid_id[4:])
        return {**answer, "person_id": self._graph().graph.person_of(uid_id)}

    async def merge(self, a: Any, b: Any, by: Any) -> dict[str, Any]:
        one, two, who = checked(a, what="a"), checked(b, what="b"), _by(by)
        graph = self._graph().graph
        for name in (one, two):
            if graph.person_of(name) is None and not name.startswith("uid:"):
                raise RPCError(f"no person has {name}: see band identity show {name}", 404)
        if graph.person_of(one) is not None and graph.person_of(one) == graph.person_of(two):
            raise RPCError(f"{one} and {two} are one person already ({graph.person_of(one)})", 409)
        answer = await self._send("merge", {"a": one, "b": two, "by": who})
        return {**answer, "person_id": graph.person_of(one)}

    async def split(self, identifier: Any, by: Any) -> dict[str, Any]:
        name, who = checked(identifier, what="identifier"), _by(by)
        graph = self._graph().graph
        person = graph.person_of(name)
        if person is None:
            raise RPCError(f"no person has {name}: see band identity show {name}", 404)
        if len(graph.members.get(person, ())) < 2:
            raise RPCError(f"{name} is a person of its own already ({person}): nothing to split", 409)
        answer = await self._send("split", {"identifier": name, "by": who})
        return {**answer, "person_id": graph.person_of(name)}

    async def show(self, identifier: Any) -> dict[str, Any]:
        name = checked(identifier, what="identifier")
        self._graph()
        engine = self.engine
        if engine is None:
            raise RPCError("the store is not ready", 503)
        try:
            found = await engine.call(show, engine.backend, self.database, name, read=True)
        except StoreError as exc:
            raise RPCError(f"the identity tables could not be read: {exc.message}", 503) from None
        if found is None:
            raise RPCError(f"no person has {name} (no identity change and no event carries it)", 404)
        return dict(found)


def _by(value: Any) -> str:
    if value is None or value == "":
        return "rpc"
    if not isinstance(value, str) or len(value) > 256:
        raise RPCError("by must be text of at most 256 characters: who asked (e.g. panel:admin, cli)", 400)
    return value
