"""The store's side of the identity graph: which events change it, loading it at start,
applying each batch's changes in stream order, and inserting their rows exactly once.

Exactly once, the writer's way (:mod:`.writer`): a batch's identity rows are made under
the engine's lock, once, in stream order, and inserted after its event rows and before
its ack; ``identities`` goes last. The graph is loaded from ``identities``, and its
highest ``stream_seq`` is where it stands: an event at or below it is already applied
(its whole batch's rows are in, since ``identities`` went last) and is skipped; one above
it is applied again after a crash, to the same graph, giving the same rows, and a row
whose table already holds its event's sequence is not inserted twice.

A replay (``band store replay``) applies what the graph has not seen, in stream order.
While it runs, the live writer leaves identity changes to it: the replay reads to the
stream's end, so it applies them after the older ones it is still reading.

One store process applies the graph: replicas writing to one ClickHouse server would
each hold a graph of their own (docs/identity.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from .. import wire
from .._core.log import Logger
from ..wire import IdentifierError, identifier, uid_identifier, user_identifier
from .backend import Backend
from .config import IDENTITIES
from .identity_graph import Change, Graph, Rows
from .schema import quote


class Applying(Protocol):
    """What the graph needs of a batch item (:class:`.writer.Item`)."""

    seq: int
    ms: int
    id: int
    identity: Change | None


def change_of(message: Mapping[str, Any]) -> Change | None:
    """The identity change ``message`` carries, if any: an event of service ``identity``;
    an ``alias`` event (the tracker's ``rstat('alias', ...)``: ``previous_id``,
    ``user_id``); any event with a non-empty ``data.user.id`` (an ``identify`` event's
    ``traits`` kept on the person).
    An identity event whose identifiers are not valid changes nothing (the edge and the
    store's RPC refuse those before they are published)."""
    service, name, data = message.get("service"), message.get("name"), message.get("data")
    if not isinstance(data, dict):
        return None
    try:
        if service == wire.IDENTITY_SERVICE:
            return _identity_event(str(name), message.get("uid"), data)
        inner = data.get("data")
        props: dict[str, Any] = inner if isinstance(inner, dict) else data  # a tracker's props, or the body's
        if name == "alias" and "previous_id" in props:  # rstat('alias', previousId, userId)
            return Change("alias", identifier(props.get("previous_id"), "auto"), identifier(props.get("user_id"), "auto"),
                          None, str(service or ""))
        user = data.get("user")
        if not isinstance(user, dict) or user.get("id") in (None, ""):
            return None
        traits = props.get("traits") if name == "identify" else None
        return Change("identify", uid_identifier(message.get("uid")), user_identifier(str(user["id"])),
                      traits if isinstance(traits, dict) else None, str(service or ""))
    except IdentifierError:
        return None


def _identity_event(name: str, uid: Any, data: Mapping[str, Any]) -> Change | None:
    by = str(data.get("by") or wire.IDENTITY_SERVICE)[:256]
    if name == "identify":
        traits = data.get("traits")
        return Change(name, uid_identifier(uid), user_identifier(data.get("user_id")),
                      traits if isinstance(traits, dict) else None, by)
    if name == "alias":
        return Change(name, identifier(data.get("previous_id"), "auto"), identifier(data.get("user_id"), "auto"), None, by)
    if name == "link":
        return Change(name, uid_identifier(uid), identifier(data.get("identifier")), None, by)
    if name == "merge":
        return Change(name, identifier(data.get("a"), "auto"), identifier(data.get("b"), "auto"), None, by)
    if name == "split":
        return Change(name, identifier(data.get("identifier"), "auto"), "", None, by)
    return None


def load_sql(database: str) -> str:
    return (f"SELECT identifier, argMax(person_id, stream_seq) AS person_id, argMax(first_seq, stream_seq) AS first_seq, "
            f"toUnixTimestamp64Milli(argMax(first_seen, stream_seq)) AS first_ms, "
            f"toUnixTimestamp64Milli(argMax(last_seen, stream_seq)) AS last_ms, max(stream_seq) AS seq "
            f"FROM {quote(database)}.{quote(IDENTITIES)} GROUP BY identifier")


class Identities:
    """The graph of one store process, shared by its writers (under the engine's lock)."""

    def __init__(self, database: str, logger: Logger) -> None:
        self.database = database
        self.log = logger
        self.graph = Graph()
        self.loaded = False
        self.written = 0  # the highest stream sequence whose batch's rows are all in
        self.replaying: Callable[[], bool] = lambda: False  # a replay runs and reads on

    def load(self, backend: Backend) -> None:
        """Blocking: run it in the engine's thread, before any batch."""
        graph = Graph()
        graph.load(backend.select(load_sql(self.database))["rows"])
        self.graph, self.loaded = graph, True
        self.written = graph.applied

    def apply(self, items: Iterable[Applying], live: bool) -> Rows:
        """The rows of the batch's identity changes, applied in stream order. The live
        writer leaves them to a replay that is running (see the module's text)."""
        rows = Rows()
        if live and self.replaying():
            return rows
        for item in sorted((it for it in items if it.identity is not None and it.seq), key=lambda it: it.seq):
            assert item.identity is not None
            self.graph.apply(item.identity, item.seq, item.ms, item.id, rows)
        return rows

    def stored(self, backend: Backend, table: str, seqs: list[int]) -> set[int]:
        """Which of ``seqs`` ``table`` holds rows of already. Blocking."""
        sql = (f"SELECT DISTINCT stream_seq FROM {quote(self.database)}.{quote(table)} "
               "WHERE stream_seq IN {seqs:Array(UInt64)}")
        return {int(r["stream_seq"]) for r in backend.select(sql, {"seqs": seqs})["rows"]}

    def done(self, top: int) -> None:
        """A batch up to stream sequence ``top`` is stored with its identity rows."""
        self.written = max(self.written, top)


__all__ = [
    "Applying",
    "Identities",
    "change_of",
    "load_sql",
]
