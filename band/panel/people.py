"""The User page's person: found by any identifier, shown with its devices, traits and merge
history; merged with another person or split from an identifier by an operator. Every change
is the store's RPC ``merge`` / ``split`` (the store records it in ``identity_log`` with ``by``);
the panel only checks the identifiers and says who asked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nats.aio.client import Client

from .. import wire
from ..runtime import RPC
from .queries import sql

TIMEOUT_S = 30.0


def identifier(text: str) -> str:
    """``kind:value`` from what the operator typed (the store's rule: a bare all-digit value is a
    uid, other bare text a user id). Raises :class:`band.wire.IdentifierError` (a ValueError)
    saying what is wrong."""
    return wire.identifier(text.strip(), "auto")


async def show(nc: Callable[[], Client], store: str, which: str) -> dict[str, Any]:
    """The store's answer for the person of ``which`` (``identity``), and its devices: ``{person_id,
    identifiers, uids, traits, merges, devices: [{uid, first_seen, last_seen, events}]}``, each
    device as its events saw it (the identity graph's times are those of the identity changes)."""
    rpc = RPC(nc)
    person: dict[str, Any] = await rpc.request(store, "identity", timeout__=TIMEOUT_S, identifier=which)
    uids = [i["identifier"].partition(":")[2] for i in person.get("identifiers") or [] if i.get("kind") == "uid"]  # digits: checked by the store
    seen = {}
    if uids:
        answer = await rpc.request(store, "query", timeout__=TIMEOUT_S, sql=sql("devices"), params={"uids": f"[{','.join(uids)}]"})
        seen = {str(r["uid"]): r for r in answer["rows"]}
    person["devices"] = [{"uid": u, "first_seen": seen.get(u, {}).get("first_seen"), "last_seen": seen.get(u, {}).get("last_seen"),
                          "events": int(seen.get(u, {}).get("events") or 0)} for u in uids]
    # 64-bit ids as text, as ClickHouse's JSON gives them: a browser's numbers hold 53 bits,
    # and a rounded person id would name somebody else (or nobody) in a merge or a forget
    person["person_id"] = str(person["person_id"])
    person["uids"] = [str(u) for u in person.get("uids") or []]
    return person


async def merge(nc: Callable[[], Client], store: str, a: str, b: str, by: str) -> Any:
    """Join the persons of ``a`` and ``b`` (the older person's id wins); recorded with ``by``."""
    return await RPC(nc).request(store, "merge", timeout__=TIMEOUT_S, a=a, b=b, by=by)


async def split(nc: Callable[[], Client], store: str, which: str, by: str) -> Any:
    """``which`` leaves its person and becomes a person of its own; recorded with ``by``."""
    return await RPC(nc).request(store, "split", timeout__=TIMEOUT_S, identifier=which, by=by)


__all__ = ["identifier", "merge", "show", "split"]
