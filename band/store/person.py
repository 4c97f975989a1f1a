"""Who a person is in the store, and where their rows are: every identifier the identity
graph joins to them (``identities``, ``person_of_uid``), every uid and user id their
events carry, and one ``WHERE`` per table that finds their rows. Forgetting deletes with
those conditions, exporting selects with them.

Values go into the SQL as literals that cannot break out of it: uids as integers, text
as ``unhex('…')``. Blocking: run it in the engine's thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .. import wire
from .backend import Backend
from .config import IDENTITIES, IDENTITY_LOG, PERSON_OF_UID, PERSON_TRAITS
from .schema import quote
from .tombstones import AUDIT, TABLE

_ROUNDS = 4  # uid → user id → uid ...: events join them too (a user.id on an event is an identify)


@dataclass
class Person:
    """A person's identifiers, found from one of them (or their person id)."""

    person_id: int = 0
    identifiers: set[str] = field(default_factory=set)
    seqs: set[int] = field(default_factory=set)  # stream sequences of the identity events that name them

    @property
    def uids(self) -> set[int]:
        return {int(i[4:]) for i in self.identifiers if i.startswith("uid:") and i[4:].isdigit()}

    @property
    def users(self) -> set[str]:
        return {i[5:] for i in self.identifiers if i.startswith("user:")}


def _text(values: Iterable[str]) -> str:
    return ", ".join(f"unhex('{v.encode().hex()}')" for v in sorted(values))


def _ints(values: Iterable[int]) -> str:
    return ", ".join(str(int(v)) for v in sorted(values))


def read(backend: Backend, sql: str) -> Any:
    """A statement of ours on the read-only side (chDB's reading session, beside the writer's
    inserts rather than between them)."""
    return backend.select(sql, None, True)


def tables(backend: Backend, database: str) -> dict[str, dict[str, str]]:
    """Every table of ``database`` (no views) and its columns' types."""
    rows = read(backend,
        "SELECT c.table AS t, c.name AS c, c.type AS type FROM system.columns AS c "
        "INNER JOIN system.tables AS s ON s.database = c.database AND s.name = c.table "
        f"WHERE c.database = unhex('{database.encode().hex()}') AND s.engine NOT LIKE '%View%'")["rows"]
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        out.setdefault(str(row["t"]), {})[str(row["c"])] = str(row["type"])
    return out


def resolve(backend: Backend, database: str, given: str | None, person_id: int = 0) -> Person:
    """The person of identifier ``given`` (``kind:value``), or of ``person_id``."""
    layout = tables(backend, database)
    db = quote(database)
    person = Person(person_id, {given} if given else set())
    graph = IDENTITIES in layout and PERSON_OF_UID in layout
    if graph and given and not person.person_id:
        rows = read(backend, f"SELECT argMax(person_id, stream_seq) AS p FROM {db}.{IDENTITIES} "
                              f"WHERE identifier = unhex('{given.encode().hex()}') HAVING count() > 0")["rows"]
        person.person_id = int(rows[0]["p"]) if rows else 0
    if not person.person_id and given and given.startswith("uid:"):
        person.person_id = int(given[4:])  # a uid the graph does not know is its own person
    if person.person_id and (not graph or not _moved(backend, db, person.person_id)):
        person.identifiers.add(f"uid:{person.person_id}")
    if graph and person.person_id:
        p = int(person.person_id)
        person.identifiers |= {str(r["i"]) for r in read(backend,
            f"SELECT identifier AS i FROM {db}.{IDENTITIES} GROUP BY identifier "
            f"HAVING argMax(person_id, stream_seq) = {p}")["rows"]}
        person.identifiers |= {f"uid:{r['u']}" for r in read(backend,
            f"SELECT uid AS u FROM {db}.{PERSON_OF_UID} GROUP BY uid HAVING argMax(person_id, stream_seq) = {p}")["rows"]}
    for _ in range(_ROUNDS):  # events that carry a user id join their uid to it
        before = len(person.identifiers)
        _join_by_events(backend, db, layout, person)
        if len(person.identifiers) == before:
            break
    person.seqs = _identity_seqs(backend, db, layout, person)
    return person


def _moved(backend: Backend, db: str, uid: int) -> bool:
    """Does uid ``uid`` belong to another person now (joined to an older one)?"""
    rows = read(backend, f"SELECT argMax(person_id, stream_seq) AS p FROM {db}.{PERSON_OF_UID} WHERE uid = {uid} "
                          "HAVING count() > 0")["rows"]
    return bool(rows) and int(rows[0]["p"]) != uid


def _join_by_events(backend: Backend, db: str, layout: dict[str, dict[str, str]], person: Person) -> None:
    for table, columns in sorted(layout.items()):
        if "uid" not in columns or columns.get("user_id") != "String" or table in (TABLE, AUDIT):
            continue
        either = [c for c in (f"uid IN ({_ints(person.uids)})" if person.uids else "",
                              f"user_id IN ({_text(person.users)})" if person.users else "") if c]
        if not either:
            return
        rows = read(backend, f"SELECT DISTINCT uid AS u, user_id AS i FROM {db}.{quote(table)} "
                              f"WHERE ({' OR '.join(either)}) AND user_id != ''")["rows"]
        for row in rows:
            person.identifiers |= {f"uid:{row['u']}", f"user:{row['i']}"}


def _identity_seqs(backend: Backend, db: str, layout: dict[str, dict[str, str]], person: Person) -> set[int]:
    """The stream sequences of the identity events that name the person (their rows and
    stream messages go too, though their uid may be another's, or none)."""
    seqs: set[int] = set()
    for table in (IDENTITIES, PERSON_OF_UID, PERSON_TRAITS, IDENTITY_LOG):
        where = _identity_where(table, layout, person)
        if where and "stream_seq" in layout.get(table, {}):
            rows = read(backend, f"SELECT DISTINCT stream_seq AS s FROM {db}.{quote(table)} WHERE {where}")["rows"]
            seqs |= {int(r["s"]) for r in rows if int(r["s"])}
    return seqs


def _identity_where(table: str, layout: dict[str, dict[str, str]], person: Person) -> str | None:
    if table not in layout:
        return None
    idents = _text(person.identifiers) if person.identifiers else ""
    p = int(person.person_id)
    parts: list[str] = []
    if table in (IDENTITIES, PERSON_TRAITS):
        parts = [f"identifier IN ({idents})" if idents else "", f"person_id = {p}" if p else ""]
    elif table == PERSON_OF_UID:
        parts = [f"uid IN ({_ints(person.uids)})" if person.uids else "", f"person_id = {p}" if p else ""]
    elif table == IDENTITY_LOG:
        parts = [f"a IN ({idents}) OR b IN ({idents})" if idents else ""]
    kept = [x for x in parts if x]
    return " OR ".join(kept) or None


def where(table: str, columns: dict[str, str], person: Person) -> str | None:
    """The condition that finds the person's rows in ``table`` (``None``: it cannot hold any)."""
    if table in (TABLE, AUDIT):
        return None
    identity = _identity_where(table, {table: columns}, person)
    if identity is not None:
        return identity
    parts = []
    if "uid" in columns and person.uids:
        parts.append(f"uid IN ({_ints(person.uids)})")
    if columns.get("user_id") == "String" and person.users:
        parts.append(f"user_id IN ({_text(person.users)})")
    if "stream_seq" in columns and person.seqs:
        parts.append(f"stream_seq IN ({_ints(person.seqs)})")
    if columns.get("message") == "String":  # events kept whole: bad_rows, failed_events
        if person.uids:
            parts.append(f"JSONExtractString(message, 'uid') IN ({_text(str(u) for u in person.uids)})")
            parts.append(f"JSONExtractUInt(message, 'uid') IN ({_ints(person.uids)})")
        if person.users:
            parts.append(f"JSONExtractString(message, 'data', 'user', 'id') IN ({_text(person.users)})")
    return " OR ".join(f"({p})" for p in parts) or None


def wheres(backend: Backend, database: str, person: Person) -> dict[str, tuple[str, bool]]:
    """table → (condition, has stream_seq) for every table that may hold the person's rows."""
    out = {}
    for table, columns in sorted(tables(backend, database).items()):
        condition = where(table, columns, person)
        if condition:
            out[table] = (condition, "stream_seq" in columns)
    return out


def parse(uid: str | None = None, user_id: str | None = None, person: str | int | None = None) -> tuple[str | None, int]:
    """Exactly one of the three, checked: ``(identifier, person id)``.

    Raises:
        ValueError: none or several given, or one that is not an identifier.
    """
    given = [x for x in (uid, user_id, person) if x not in (None, "")]
    if len(given) != 1:
        raise ValueError("give exactly one of uid, user_id, person")
    if uid not in (None, ""):
        return wire.uid_identifier(str(uid).lstrip("0") or "0"), 0
    if user_id not in (None, ""):
        return wire.user_identifier(user_id), 0
    if not str(person).isdigit() or not 0 < int(str(person)) < 2**64:
        raise ValueError(f"person must be a person id (a decimal UInt64), got {person!r}")
    return None, int(str(person))


__all__ = [
    "Person",
    "parse",
    "read",
    "resolve",
    "tables",
    "where",
    "wheres",
]
