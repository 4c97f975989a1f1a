"""Tombstones: a keyed hash of every identifier of a forgotten person, so an event of
theirs that arrives after the forget (still in flight at the edge, sent again by a
browser that kept its cookie) is dropped by the store's writer and counted, never stored.

The table (``tombstones``) holds only a keyed hash (BLAKE2b) of each identifier: it says that
*someone* was forgotten, not who. The key is the store's setting ``privacy_key``
(``$BAND_PRIVACY_KEY``); without it the store makes one and keeps it in its data
directory (``privacy.key``, owner-only). Store replicas sharing a ClickHouse server
need the same key: set it.

Checking an event costs nothing while no one is forgotten; afterwards, one JSON decode
and one or two keyed hashes per event, under the writer's lock (:meth:`Tombstones.sift`), so a
forget that holds the lock once knows every later batch is sifted.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import wire
from .._core.log import Logger
from . import body
from .backend import Backend, StoreError
from .identity import change_of
from .metrics import metrics
from .schema import quote

TABLE = "tombstones"
AUDIT = "privacy_log"
KEY_FILE = "privacy.key"
VERDICTS = 100_000  # identifiers whose verdict is remembered
REFRESH_S = 5.0  # how soon a replica learns of another replica's forget


def ddl(database: str) -> list[str]:
    """The two tables of forgetting; made at start, never by ``store.insert`` (not in the config)."""
    db = quote(database)
    return [
        f"CREATE TABLE IF NOT EXISTS {db}.{quote(TABLE)} (hash String, kind LowCardinality(String), "
        "at DateTime64(3, 'UTC')) ENGINE = ReplacingMergeTree ORDER BY hash",
        f"CREATE TABLE IF NOT EXISTS {db}.{quote(AUDIT)} (at DateTime64(3, 'UTC'), action LowCardinality(String), "
        "by String, tombstones Array(String), counts String, seconds Float64) ENGINE = MergeTree ORDER BY at",
    ]


def load_key(setting: Any, data_dir: Path) -> bytes:
    """The hash key: the setting when given, else the data directory's key file (made once)."""
    if setting:
        return str(setting).encode()
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def identifiers_of(message: Mapping[str, Any]) -> set[str]:
    """Every identifier an event names, as the identity graph reads them: its uid, its
    user id (``data.user.id``), and what an identity event joins (:func:`.identity.change_of`)."""
    out = set()
    data = message.get("data")
    user = data.get("user") if isinstance(data, Mapping) else None
    for make, value in ((wire.uid_identifier, message.get("uid")),
                        (wire.user_identifier, user.get("id") if isinstance(user, Mapping) else None)):
        if value not in (None, "", 0, "0"):
            try:
                out.add(make(value))
            except wire.IdentifierError:
                pass
    change = change_of(message)
    if change is not None:
        out |= {change.a, change.b} - {""}
    return out


class Tombstones:
    """The hashes of forgotten identifiers, in memory, and the events dropped for them."""

    def __init__(self, key: bytes, logger: Logger) -> None:
        self._key = hashlib.sha256(key).digest()  # BLAKE2b takes a key of at most 64 bytes
        self.log = logger
        self.hashes: set[str] = set()
        self.dropped = 0
        self.erase: Callable[[list[int]], Any] | None = None  # deletes dropped events from the stream (set by the store)
        self._stored = 0  # rows seen in the table at the last refresh
        self._verdicts: dict[str, bool] = {}  # identifier → forgotten, for the events seen lately; cleared on a change

    def hash(self, ident: str) -> str:
        return hashlib.blake2b(ident.encode(), key=self._key, digest_size=32).hexdigest()

    def forgotten(self, message: Mapping[str, Any]) -> bool:
        return any(self._is_forgotten(i) for i in identifiers_of(message))

    def _is_forgotten(self, ident: str) -> bool:
        """One identifier, its verdict cached (a visitor's events come in runs; a hash is about 1 µs)."""
        verdict = self._verdicts.get(ident)
        if verdict is None:
            if len(self._verdicts) >= VERDICTS:
                self._verdicts.clear()
            verdict = self._verdicts[ident] = self.hash(ident) in self.hashes
        return verdict

    def sift(self, items: list[Any]) -> list[Any]:
        """``items`` (in stream order) less the events of forgotten people, or ``items``
        itself when none is; those are counted and handed to :attr:`erase` (they are
        acked with the batch, never stored)."""
        if not self.hashes:
            return items
        kept: list[Any] = []
        gone: list[int] = []
        for item in items:
            try:
                message = body.load(item.msg.data)
            except wire.DecodeError:
                message = None
            if isinstance(message, dict) and self.forgotten(message):
                gone.append(item.seq)
            else:
                kept.append(item)
        if not gone:
            return items
        self.dropped += len(gone)
        metrics().forgotten.inc(len(gone))
        self.log.info("store: events of forgotten people dropped", events=len(gone))
        if self.erase is not None:
            self.erase([s for s in gone if s])
        return kept

    # --- the table -----------------------------------------------------------------------
    def read(self, backend: Backend, database: str) -> None:
        """Load every stored hash (at start, and when another replica added some). Blocking."""
        table = f"{quote(database)}.{quote(TABLE)}"
        count = int(backend.select(f"SELECT count() AS n FROM {table}")["rows"][0]["n"])
        if count == self._stored:
            return
        rows = backend.select(f"SELECT DISTINCT hash FROM {table}")["rows"]
        self.hashes |= {str(r["hash"]) for r in rows}
        self._stored = count
        self._verdicts = {}

    def add(self, backend: Backend, database: str, kinds: Mapping[str, str]) -> list[str]:
        """Record ``kinds`` (hash → kind); the hashes that were new. Blocking."""
        new = [h for h in kinds if h not in self.hashes]
        if new:
            rows = "\n".join(wire.encode({"hash": h, "kind": kinds[h], "at": time.time()}).decode() for h in new)
            backend.insert(database, TABLE, rows.encode(), "JSONEachRow", ())
            self.hashes.update(new)
            self._stored += len(new)
            self._verdicts = {}
        return new

    async def watch(self, call: Callable[..., Any], backend: Backend, database: str) -> None:
        """Re-read the table every few seconds (another replica may have forgotten someone)."""
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await call(self.read, backend, database)
            except StoreError as exc:
                self.log.warning("store: tombstones not re-read", error=exc.message)
            except RuntimeError:  # the engine's threads are shut down: the store is stopping
                return


def kinds_of(tombstones: Tombstones, identifiers: Iterable[str]) -> dict[str, str]:
    """hash → kind for ``identifiers``."""
    return {tombstones.hash(i): i.partition(":")[0] for i in identifiers}


__all__ = [
    "AUDIT",
    "KEY_FILE",
    "REFRESH_S",
    "TABLE",
    "VERDICTS",
    "Tombstones",
    "ddl",
    "identifiers_of",
    "kinds_of",
    "load_key",
]
