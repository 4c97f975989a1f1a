"""People, not cookies, from a service: ``from band import identity``.

::

    await identity.identify(uid, "user-42", {"plan": "pro"})  # this browser is user-42
    await identity.alias("old-login", "user-42")              # two ids, one person
    person = await identity.show("user:user-42")              # every device, trait and merge

Each call goes over RPC to the ``store`` service, which publishes the identity event into
the stream (services may not publish events themselves) and answers once it is stored:
the store applies identity changes in stream order, so a replay rebuilds the same graph.
See docs/identity.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._core.app import current_app

SERVICE = "store"
DEFAULT_TIMEOUT_S = 30.0

__all__ = ["alias", "identify", "link", "show"]


async def identify(uid: str | int, user_id: str, traits: Mapping[str, Any] | None = None, /,
                   timeout__: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Join the browser ``uid`` and your ``user_id`` (``user:<user_id>``) into one person;
    ``traits`` are recorded on it. Returns ``{"stream_seq", "applied", "person_id"}``.

    Raises:
        band.RPCError: 400 naming a bad uid, user id or trait; 503 when no store runs.
    """
    answer: dict[str, Any] = await current_app().rpc.request(
        SERVICE, "identify", timeout__=timeout__, uid=str(uid), user_id=user_id, traits=dict(traits or {}))
    return answer


async def alias(previous_id: str, user_id: str, /, timeout__: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Join two identifiers into one person (``kind:value``; bare digits are a uid, other
    bare text a user id)."""
    answer: dict[str, Any] = await current_app().rpc.request(
        SERVICE, "alias", timeout__=timeout__, previous_id=previous_id, user_id=user_id)
    return answer


async def link(uid: str | int, identifier: str, /, timeout__: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Join a further identifier (``partner:<partner>:<id>``, ``phone:<digits>``) to the uid's person."""
    answer: dict[str, Any] = await current_app().rpc.request(
        SERVICE, "link", timeout__=timeout__, uid=str(uid), identifier=identifier)
    return answer


async def show(identifier: str, /, timeout__: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """The person of any identifier: ``{person_id, identifiers: [{identifier, kind,
    first_seen, last_seen}], uids, traits, merges}``.

    Raises:
        band.RPCError: 404 when no person has it.
    """
    answer: dict[str, Any] = await current_app().rpc.request(SERVICE, "identity", timeout__=timeout__,
                                                            identifier=identifier)
    return answer
