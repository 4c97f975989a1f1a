"""One hit, whatever brought it: the rules that make a band message of a transport's parts.

An HTTP request (:mod:`broker.request`), a WebSocket frame (:mod:`broker.ws`) and an
upload (:mod:`broker.upload`) each only extract their raw :class:`Parts`; :func:`make_hit`
applies the one set of rules to every one of them: service and name, fields, ``projectId``,
``uid``, ``td``, and the message's field order. So a page's events carry one uid whichever
way they came.

The uid rule: the first valid uid the hit names (its URL's ``uid``, then its payload's:
body, form fields or frame), then the ``uid`` cookie, then the transport's own (a socket's),
else a new id. No aiohttp here.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from band import wire
from band.errors import BandError
from band.response import PixelResponse, RedirectResponse, Response
from band.runtime import new_id

from .config import IPNetwork
from .headers import forwarded_host

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class BadHit(BandError):
    """A hit the edge refuses; ``status`` is 400, 404, 408, 413, 415 or 503 (busy, with
    ``retry_after`` seconds)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(slots=True)
class Parts:
    """What a transport extracted from its request, frame or upload, before any rule."""

    channel: str  # "http", "pixel" or "ws"
    service: Any  # as asked (an alias is resolved by the rules), or a path route's
    name: Any
    query: Mapping[str, Any]  # the URL's fields
    payload: Mapping[str, Any]  # the body's, the form's or the frame's fields
    cookie: str | None  # the ``uid`` cookie as sent
    td: dict[str, Any]  # transport data: :func:`td_of`
    project: Any = None  # the path's projectId (or a path route's), before the fields'
    params: dict[str, Any] | None = None  # a path route's parameters: service and name are its own
    own_uid: str | None = None  # the transport's uid when the hit names none and has no cookie
    id: str | None = None  # an id made before the parts were read (an upload names its objects by it)
    files: list[dict[str, Any]] | None = None  # an upload's file references
    native: bool = False  # a `band` segment: answer with the whole typed response as JSON
    image: bool = False  # an image request (`.gif` or Accept: image/*)
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)  # the request's (or the upgrade's): the trace's parent
    method: str = "GET"
    path: str = "/"
    trusted: bool = False  # a backend's, with a project key (broker.identify): may be an identity event


@dataclass(slots=True)
class Hit:
    """A hit as a band message, and what its answer and its trace need."""

    message: dict[str, Any]
    native: bool
    image: bool
    headers: Mapping[str, str]
    method: str
    path: str
    trusted: bool = False  # a backend's (broker.identify): no bot check

    @property
    def uid(self) -> str:
        return str(self.message["uid"])


def make_hit(parts: Parts, aliases: Mapping[str, str]) -> Hit:
    """The one set of rules from a transport's parts to a hit.

    Raises:
        BadHit: missing or unsafe service or name (nothing is published).
    """
    query, payload = parts.query, parts.payload
    if parts.params is not None:
        service, name = str(parts.service), str(parts.name)
    else:
        asked = parts.service
        service = check_token("service", aliases.get(asked, asked) if isinstance(asked, str) else asked)
        name = check_token("name", parts.name)
    if service == wire.IDENTITY_SERVICE and not parts.trusted:
        raise BadHit(403, "identity events come from a backend: POST /band/identify.json with a project key "
                          "(or rstat('identify', ...) on the page, docs/identity.md)")
    data: dict[str, Any] = {**payload, **query}
    if parts.params:
        data.update(parts.params)
    uid = first_uid(query.get("uid"), payload.get("uid"), parts.cookie) or parts.own_uid or new_id()
    message = {
        "key": f"{wire.KEY_PREFIX}.{service}.{name}",
        "service": service,
        "name": name,
        "channel": parts.channel,
        "projectId": project_id(parts.project, query.get("projectId"), payload.get("projectId")),
        "uid": uid,
        "td": parts.td,
        "data": data,
        "id": parts.id or new_id(),
        "time": time.time_ns() // 1_000_000,
    }
    if parts.params is not None:  # the handler gets them as keywords, over the message's own fields
        message[wire.PARAMS_FIELD] = parts.params
    if parts.files is not None:
        message[wire.FILES_FIELD] = parts.files
    return Hit(message, parts.native, parts.image, parts.headers, parts.method, parts.path, parts.trusted)


def http_status(answer: Response, native: bool) -> int:
    """The HTTP status ``answer`` goes out with (:mod:`broker.render` follows it): the
    native form answers a redirect and a pixel 200 (the SDK follows it itself); a pixel
    answers 200 unless its status is another 2xx."""
    if native:
        return 200 if isinstance(answer, (RedirectResponse, PixelResponse)) else answer.statusCode
    if isinstance(answer, PixelResponse) and not 200 <= answer.statusCode < 300:
        return 200
    return answer.statusCode


# --- uid and projectId ------------------------------------------------------------
def valid_uid(value: Any) -> str | None:
    """``value`` as a uid when it is one (``^[0-9]{10,22}$``, not all zeros, at most
    ``2**64 - 1``); else ``None``.

    The web SDK sends ``"uid": 0`` (and ``?uid=0``) before it knows one: that is no uid.
    Neither is a number past 64 bits: the SDK's pattern lets 20-22 digits through, but the
    store keeps uids as ``UInt64``, where every such uid would become one and the same.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and wire.is_uid(value):
        return value
    return None


def first_uid(*candidates: Any) -> str | None:
    """The first candidate that is a valid uid, else ``None``."""
    for value in candidates:
        uid = valid_uid(value)
        if uid is not None:
            return uid
    return None


def pick_uid(*candidates: Any) -> str:
    """The first candidate that is a valid uid, else a new id."""
    return first_uid(*candidates) or new_id()


def project_id(*candidates: Any) -> int:
    """The first candidate given; an integer or 0."""
    for value in candidates:
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            return 0
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 20:
            return int(value)
        return 0
    return 0


def check_token(what: str, value: Any) -> str:
    """``value`` when it is safe in a subject (letters, digits, ``_``, ``-``).

    Raises:
        BadHit: 400 naming what is missing or wrong.
    """
    if value is None or value == "":
        raise BadHit(400, f"{what} is missing: use /<service>/<name>")
    if not wire.is_token(value):
        shown = repr(value)[:64]
        raise BadHit(400, f"{what} {shown} is not valid: letters, digits, '_' and '-' only")
    return str(value)


# --- who: td ------------------------------------------------------------------------
def _valid_ip(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


class ClientIP:
    """Who sent a hit: X-Real-IP, else the first X-Forwarded-For hop — only when the peer
    is a trusted proxy; else the peer. Peer decisions are cached (peers repeat)."""

    def __init__(self, trusted: tuple[IPNetwork, ...]) -> None:
        self.trusted = trusted
        self._peers: dict[str, tuple[str, bool]] = {}

    def _peer(self, peer: str) -> tuple[str, bool]:
        known = self._peers.get(peer)
        if known is None:
            ip = _valid_ip(peer)
            known = (ip, any(ipaddress.ip_address(ip) in net for net in self.trusted)) if ip else (peer, False)
            if len(self._peers) > 50_000:
                self._peers.clear()
            self._peers[peer] = known
        return known

    def trusts(self, peer: str | None) -> bool:
        """Is ``peer`` a trusted proxy (its forwarding headers count)?"""
        if not peer:
            return False
        return self._peer(peer)[1]

    def host(self, peer: str | None, headers: Mapping[str, str]) -> str:
        """The ``X-Forwarded-Host`` a trusted proxy passed; "" from anyone else."""
        if "X-Forwarded-Host" not in headers or not self.trusts(peer):
            return ""
        return forwarded_host(headers)

    def __call__(self, peer: str | None, headers: Mapping[str, str]) -> str:
        if not peer:
            return ""
        peer_ip, is_proxy = self._peer(peer)
        if is_proxy:
            real = headers.get("X-Real-IP")
            if real:
                real = _valid_ip(real)
                if real:
                    return real
            forwarded = headers.get("X-Forwarded-For")
            if forwarded:
                first = _valid_ip(forwarded.split(",", 1)[0])
                if first:
                    return first
        return peer_ip


def header_text(headers: Mapping[str, str], name: str) -> str:
    """A header's value as text for the message ("" when absent).

    Raises:
        BadHit: the value is not UTF-8 (aiohttp keeps such bytes as lone surrogates,
            which could not be published).
    """
    value = headers.get(name, "")
    if not value.isascii() and wire.lone_surrogate(value) is not None:
        raise BadHit(400, f"header {name} is not valid UTF-8: send it as UTF-8 (or percent-encoded)")
    return value


def td_of(headers: Mapping[str, str], peer: str | None, client_ip: ClientIP) -> dict[str, Any]:
    """Transport data; ``host`` is the ``X-Forwarded-Host`` a trusted proxy passed, else ``Host``.

    Raises:
        BadHit: a header that goes into it is not UTF-8.
    """
    host = client_ip.host(peer, headers) or header_text(headers, "Host")
    return {
        "ip": client_ip(peer, headers),
        "ua": header_text(headers, "User-Agent"),
        "ref": header_text(headers, "Referer"),
        "host": host,
    }


__all__ = ["BadHit", "ClientIP", "Hit", "Parts", "check_token", "first_uid", "header_text", "http_status", "make_hit", "pick_uid", "project_id",
           "td_of", "valid_uid"]
