"""Consent: whether a hit may carry a cookie uid, and the cookieless uid when it may not.

The edge keeps no state about a visitor: each hit says what it needs. The page's word is
the field ``consent`` (query or body: ``granted`` or ``denied``), which band's tracker sends
with every event once the visitor chose; the answer also records the choice in the cookie
``<cookie_name>_consent`` (``granted`` beside the uid cookie; ``denied`` alone, the uid cookie
expired), so a tracker that cannot add a field (the Rockstat SDK) is recognised by it once the
page sent its word one time.

What the hit is (:meth:`Consent.decide`), first rule that applies:

1. ``Sec-GPC: 1`` (and ``DNT: 1`` with ``consent_dnt``): denied, whatever the page says;
2. the page's word;
3. the consent cookie;
4. the setting: ``implied`` grants, ``required`` does not.

Not granted, the uid is a keyed hash of (today's key, projectId, address, user agent)
(:class:`~broker.privacy.DailyKey`): the same for a visitor all day, another the next day,
and no uid cookie is set (a refusal expires the one the browser has). Such a uid has its top
bit set (at least ``2**63``), unlike any id the edge makes. Granted in ``required`` mode
without a uid of its own, the visitor keeps today's cookieless uid, now in its cookie, so the
visit is not split; a grant from a browser that already holds another uid publishes an
identity ``alias`` joining the two.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from band.errors import ConfigError

from .privacy import DailyKey

IMPLIED, REQUIRED = "implied", "required"
MODES = (IMPLIED, REQUIRED)
FIELD = "consent"  # the page's word, in the query or the body
GRANTED, DENIED = "granted", "denied"
WORDS = (GRANTED, DENIED)
_TOP = 1 << 63
_SEEN_MAX = 10_000  # grants joined lately (bounded): a page resending its word joins once

# what an answer does with the cookies
SET = "set"  # the uid cookie (implied mode: as always)
GRANT = "grant"  # the uid cookie and the consent cookie: granted
KEEP = ""  # nothing: no Set-Cookie
CLEAR = "clear"  # the page's denial: the uid cookie expired, the consent cookie: denied
EXPIRE = "expire"  # the browser's refusal (GPC, DNT): both cookies expired, nothing recorded


@dataclass(frozen=True, slots=True)
class Decision:
    """What one hit is: granted or not, the cookie action, whether it is a grant that
    may join a browser's earlier uid."""

    granted: bool
    cookie: str
    fresh: bool = False  # the page's grant, without the consent cookie yet


_REFUSED = Decision(False, CLEAR)
_EXPIRED = Decision(False, EXPIRE)
_NOT_GRANTED = Decision(False, KEEP)
_IMPLIED = Decision(True, SET)
_GRANTED = Decision(True, GRANT)
_FRESH_GRANT = Decision(True, GRANT, fresh=True)


class Consent:
    """The edge's consent setting and the cookieless uid's key."""

    def __init__(self, mode: str, key: DailyKey, dnt: bool = False) -> None:
        if mode not in MODES:
            raise ConfigError(f"consent must be {' or '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.required = mode == REQUIRED
        self.key = key
        self.dnt = dnt
        self._joined: set[str] = set()

    @staticmethod
    def word(data: dict[str, Any]) -> str | None:
        """Take the page's word out of the hit's fields (it becomes the message's ``consent``).

        Raises:
            ValueError: a value that is not ``granted`` or ``denied``, naming it.
        """
        if FIELD not in data:
            return None
        said = data.pop(FIELD)
        if said is None or said == "":
            return None
        if said not in WORDS:
            raise ValueError(f"consent must be {GRANTED!r} or {DENIED!r}, got {str(said)[:64]!r}")
        return str(said)

    def refused(self, headers: Mapping[str, str]) -> bool:
        """Does the browser itself refuse (``Sec-GPC: 1``, ``DNT: 1`` when asked to honour it)?"""
        gpc = headers.get("Sec-GPC")
        if gpc is not None and gpc.strip() == "1":
            return True
        return self.dnt and headers.get("DNT", "").strip() == "1"

    def decide(self, headers: Mapping[str, str], word: str | None, choice: str | None, uid_cookie: bool) -> Decision:
        """The hit's consent by the rules of the module docstring. ``choice``: the consent
        cookie's word (``None`` without one); ``uid_cookie``: the browser sent a uid cookie.
        The page's denial is recorded (the consent cookie says ``denied``); the browser's own
        refusal only expires what would track it."""
        if word == DENIED:
            return _REFUSED
        if self.refused(headers):
            return _EXPIRED if uid_cookie or choice == GRANTED else _NOT_GRANTED
        if word == GRANTED:
            if not self.required:
                return _IMPLIED if choice is None else _GRANTED  # a denial recorded before is overwritten
            return _GRANTED if choice == GRANTED else _FRESH_GRANT
        if choice == DENIED:
            return _NOT_GRANTED
        if not self.required:
            return _IMPLIED
        return _GRANTED if choice == GRANTED else _NOT_GRANTED

    def cookieless_uid(self, project: int, ip: str, ua: str) -> str:
        """Today's uid of a visitor without consent: a keyed hash of project, address and
        user agent, top bit set."""
        return str(int.from_bytes(self.key.digest(b"band-uid", str(project), ip, ua), "big") | _TOP)

    def first_join(self, previous: str, uid: str) -> bool:
        """``True`` the first time (lately) a grant joins ``previous`` to ``uid``."""
        pair = f"{previous}:{uid}"
        if pair in self._joined:
            return False
        if len(self._joined) >= _SEEN_MAX:
            self._joined.clear()
        self._joined.add(pair)
        return True


def alias_message(hit_message: Mapping[str, Any], previous: str, uid: str, new_id: str) -> dict[str, Any]:
    """The identity ``alias`` event joining a visitor's cookieless uid to its cookie uid."""
    return {
        "key": "in.gen.identity.alias", "service": "identity", "name": "alias", "channel": hit_message["channel"],
        "projectId": hit_message["projectId"], "uid": uid, "td": hit_message["td"],
        "data": {"previous_id": f"uid:{previous}", "user_id": f"uid:{uid}"},
        "id": new_id, "time": hit_message["time"], FIELD: 1,
    }


__all__ = ["CLEAR", "DENIED", "EXPIRE", "FIELD", "GRANT", "GRANTED", "IMPLIED", "KEEP", "MODES", "REQUIRED", "SET", "WORDS", "Consent", "Decision",
           "alias_message"]
