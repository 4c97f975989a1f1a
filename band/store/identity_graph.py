"""The identity graph in memory: identifier → person, changed in stream order.

Pure (no ClickHouse, no NATS), so a replay and a restart rebuild the same graph from the
same changes: :mod:`.identity` loads it from the ``identities`` table at start, feeds it
each batch's identity changes in stream order and inserts the rows it returns.

Rules (docs/identity.md): a new identifier is a person of its own, whose id is the
identifier's *natural id* (a uid's number, else a 64-bit hash of ``kind:value``). A
person's id is its oldest member's natural id, oldest meaning the lowest stream sequence
it joined the graph at (a uid before another kind, then by text, within one event). When
two persons join, the older one's id wins and the younger one's members move to it. A
split takes one identifier out into a person of its own; the rest keep (or, when it was
the oldest, take) their oldest member's id.

Memory: only identifiers that took part in an identity change are here (a uid that never
identified is not). Each costs its key (about 70 bytes for ``uid:<19 digits>``), an
:class:`Entry` with its ints, and a place in the dict and in its person's set: measured
with tracemalloc, about 350 bytes per identifier (100,000 uids, two to a user id), so
350 MB per million identifiers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..wire import MAX_TRAIT_KEY, MAX_TRAIT_VALUE, MAX_TRAITS  # more, or longer ones, are left out

LAST_SEEN_STEP_MS = 60_000  # last_seen is written again only when it moved this much


class Change(NamedTuple):
    """One identity change as the store read it from an event (it crosses a process
    boundary from the row builders: plain values only)."""

    action: str  # identify | alias | link | merge | split
    a: str  # kind:value (identify, link: the uid)
    b: str  # kind:value ("" for split)
    traits: dict[str, Any] | None
    by: str


@dataclass(slots=True)
class Entry:
    person: int
    first_seq: int
    first_ms: int
    last_ms: int


@dataclass
class Rows:
    """Rows for the four tables, each carrying the stream sequence of its event."""

    identities: list[dict[str, Any]] = field(default_factory=list)
    person_of_uid: list[dict[str, Any]] = field(default_factory=list)
    person_traits: list[dict[str, Any]] = field(default_factory=list)
    identity_log: list[dict[str, Any]] = field(default_factory=list)

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """By table, in the order they are inserted: ``identities`` last, since the graph
        is loaded from it (a batch whose identities rows are in has all its rows in)."""
        return {"person_traits": self.person_traits, "identity_log": self.identity_log,
                "person_of_uid": self.person_of_uid, "identities": self.identities}

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.tables().values())


def natural_id(identifier: str) -> int:
    """A uid's number; for any other identifier a stable 64-bit hash of it (never 0)."""
    kind, _, value = identifier.partition(":")
    if kind == "uid":
        return int(value)
    return int.from_bytes(hashlib.blake2b(identifier.encode(), digest_size=8).digest(), "big") or 1


def when(ms: int) -> str:
    """Milliseconds since the epoch as a DateTime64(3) ClickHouse reads in any format."""
    seconds, millis = divmod(max(0, ms), 1000)
    return f"{dt.datetime.fromtimestamp(seconds, dt.UTC):%Y-%m-%d %H:%M:%S}.{millis:03d}"


class Graph:
    """Identifiers, their persons and each person's oldest member."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.members: dict[int, set[str]] = {}
        self.oldest: dict[int, tuple[int, int, str]] = {}  # person -> age of its oldest member
        self.applied = 0  # the highest stream sequence applied

    # --- reading --------------------------------------------------------------------
    def person_of(self, identifier: str) -> int | None:
        entry = self.entries.get(identifier)
        return entry.person if entry else None

    def age(self, identifier: str) -> tuple[int, int, str]:
        return (self.entries[identifier].first_seq, 0 if identifier.startswith("uid:") else 1, identifier)

    # --- loading ----------------------------------------------------------------------
    def load(self, rows: list[dict[str, Any]]) -> None:
        """The current ``identities`` rows (one per identifier: the latest)."""
        for row in rows:
            identifier = str(row["identifier"])
            person = int(row["person_id"])
            self.entries[identifier] = Entry(person, int(row["first_seq"]), int(row["first_ms"]), int(row["last_ms"]))
            self.members.setdefault(person, set()).add(identifier)
            self.applied = max(self.applied, int(row["seq"]))
        for person, members in self.members.items():
            self.oldest[person] = min(map(self.age, members))

    # --- changing ---------------------------------------------------------------------
    def apply(self, change: Change, seq: int, ms: int, event_id: int, rows: Rows) -> None:
        """Apply one change read at stream sequence ``seq`` (skipped when at or below
        :attr:`applied`: already in the graph), adding its rows to ``rows``."""
        if seq <= self.applied:
            return
        self.applied = seq
        if change.action == "split":
            self._split(change, seq, ms, event_id, rows)
            return
        self._touch(change.a, seq, ms, rows)
        self._touch(change.b, seq, ms, rows)
        self._join(change, seq, ms, event_id, rows)
        if change.traits:
            self._traits(change, seq, ms, rows)

    def _touch(self, identifier: str, seq: int, ms: int, rows: Rows) -> None:
        entry = self.entries.get(identifier)
        if entry is None:
            person = natural_id(identifier)
            entry = self.entries[identifier] = Entry(person, seq, ms, ms)
            self.members.setdefault(person, set()).add(identifier)
            self.oldest[person] = min(self.oldest.get(person, (seq + 1, 0, "")), self.age(identifier))
        elif ms - entry.last_ms >= LAST_SEEN_STEP_MS:
            entry.last_ms = ms
        else:
            return
        self._row(identifier, entry, seq, rows)

    def _row(self, identifier: str, entry: Entry, seq: int, rows: Rows) -> None:
        kind = identifier.partition(":")[0]
        rows.identities.append({"identifier": identifier, "kind": kind, "person_id": entry.person,
                                "first_seen": when(entry.first_ms), "last_seen": when(entry.last_ms),
                                "first_seq": entry.first_seq, "stream_seq": seq})
        if kind == "uid":
            rows.person_of_uid.append({"uid": int(identifier[4:]), "person_id": entry.person, "stream_seq": seq})

    def _join(self, change: Change, seq: int, ms: int, event_id: int, rows: Rows) -> None:
        one, two = self.entries[change.a].person, self.entries[change.b].person
        if one == two:
            return
        winner, loser = (one, two) if self.oldest[one] <= self.oldest[two] else (two, one)
        self._move(self.members.pop(loser), winner, seq, rows)
        del self.oldest[loser]
        rows.identity_log.append(_log(change.action, change.a, change.b, winner, loser, change.by, event_id, seq, ms))

    def _move(self, identifiers: set[str], person: int, seq: int, rows: Rows) -> None:
        self.members.setdefault(person, set()).update(identifiers)
        for identifier in sorted(identifiers):
            entry = self.entries[identifier]
            entry.person = person
            self._row(identifier, entry, seq, rows)

    def _split(self, change: Change, seq: int, ms: int, event_id: int, rows: Rows) -> None:
        entry = self.entries.get(change.a)
        if entry is None or len(self.members[entry.person]) < 2:
            return  # unknown, or a person of its own already: nothing to take apart
        person = entry.person
        rest = self.members.pop(person)
        rest.discard(change.a)
        del self.oldest[person]
        oldest = min(rest, key=self.age)
        remaining = natural_id(oldest)
        if remaining == person:
            self.members[person] = rest
        else:  # the split identifier was the oldest: the rest take their oldest member's id
            self._move(rest, remaining, seq, rows)
        self.oldest[remaining] = self.age(oldest)
        alone = natural_id(change.a)
        entry.person = alone
        self.members[alone] = {change.a}
        self.oldest[alone] = self.age(change.a)
        self._row(change.a, entry, seq, rows)
        rows.identity_log.append(_log("split", change.a, "", remaining, alone, change.by, event_id, seq, ms))

    def _traits(self, change: Change, seq: int, ms: int, rows: Rows) -> None:
        assert change.traits is not None
        person = self.entries[change.a].person
        for key, value in list(change.traits.items())[:MAX_TRAITS]:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            if not key or len(key) > MAX_TRAIT_KEY or len(text) > MAX_TRAIT_VALUE:
                continue
            rows.person_traits.append({"person_id": person, "identifier": change.b, "key": str(key), "value": text,
                                       "at": when(ms), "stream_seq": seq})


def _log(action: str, a: str, b: str, winner: int, loser: int, by: str, event_id: int, seq: int, ms: int) -> dict[str, Any]:
    return {"at": when(ms), "action": action, "a": a, "b": b, "winner": winner, "loser": loser, "by": by,
            "event_id": event_id, "stream_seq": seq}


__all__ = [
    "LAST_SEEN_STEP_MS",
    "Change",
    "Entry",
    "Graph",
    "Rows",
    "natural_id",
    "when",
]
