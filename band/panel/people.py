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

TIMEOUT_S = 30.0


def identifier(text: str) -> str:
    """``kind:value`` from what the operator typed (the store's rule: a bare all-digit value is a
    uid, other bare text a user id). Raises :class:`band.wire.IdentifierError` (a ValueError)
    saying what is wrong."""
    return wire.identifier(text.strip(), "auto")


async def show(nc: Callable[[], Client], store: str, which: str) -> dict[str, Any]:
    """The store's answer for the person of ``which`` (``identity``), devices first: ``{person_id,
    identifiers, uids, devices: [{uid, first_seen, last_seen}], traits, merges}``."""
    person: dict[str, Any] = await RPC(nc).request(store, "identity", timeout__=TIMEOUT_S, identifier=which)
    ids = person.get("identifiers") or []
    person["devices"] = [{"uid": i["identifier"].partition(":")[2], "first_seen": i.get("first_seen"), "last_seen": i.get("last_seen")}
                         for i in ids if i.get("kind") == "uid"]
    return person


async def merge(nc: Callable[[], Client], store: str, a: str, b: str, by: str) -> Any:
    """Join the persons of ``a`` and ``b`` (the older person's id wins); recorded with ``by``."""
    return await RPC(nc).request(store, "merge", timeout__=TIMEOUT_S, a=a, b=b, by=by)


async def split(nc: Callable[[], Client], store: str, which: str, by: str) -> Any:
    """``which`` leaves its person and becomes a person of its own; recorded with ``by``."""
    return await RPC(nc).request(store, "split", timeout__=TIMEOUT_S, identifier=which, by=by)


__all__ = ["identifier", "merge", "show", "split"]
