"""The User page's person: found by any identifier, shown with its devices, traits and merge
history; merged with another person or split from an identifier by an operator. Every change
is the store's RPC ``merge`` / ``split`` (the store records it in ``identity_log`` with ``by``);
the panel only checks the identifiers and says who asked."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client

from .. import wire
from ..runtime import RPC

KINDS = ("uid", "user", "partner", "phone")
MAX_VALUE = 512  # the identity contract's longest value
TIMEOUT_S = 30.0
_UID = re.compile(r"[0-9]{1,20}")


def identifier(text: str) -> str:
    """``kind:value`` from what the operator typed; a bare uid (10 to 22 digits) is ``uid:``, any
    other bare value a user id. Raises ValueError saying what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("type an identifier: a uid, a user id, partner:<partner>:<id> or phone:<digits>")
    kind, colon, value = text.partition(":")
    if not colon or kind not in KINDS:
        kind, value = ("uid", text) if wire.UID_RE.match(text) else ("user", text)
    if not value or len(value) > MAX_VALUE:
        raise ValueError(f"an identifier's value is 1 to {MAX_VALUE} characters after '{kind}:', not {len(value)}")
    if kind == "uid" and not (_UID.fullmatch(value) and int(value) < 2**64):
        raise ValueError(f"a uid is a number below 2^64, not {value[:40]!r}")
    return f"{kind}:{value}"


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


__all__ = ["KINDS", "MAX_VALUE", "identifier", "merge", "show", "split"]
