"""From an HTTP hit to a band message: path, aliases, extensions, band mark, fields, uid, td.

Everything that can be wrong with a hit is found here and raised as :class:`BadHit`
(status + a message naming the problem) before anything reaches NATS: only subject-safe
tokens ever become part of a routing key.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import unquote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from band import wire
from band.runtime import new_id

from . import bodies, qs
from .bodies import RETRY_AFTER_S, Held, OverBudget
from .config import EdgeConfig, IPNetwork
from .discovery import Snapshot
from .headers import forwarded_host
from .render import json_response
from band.errors import BandError

_BLANK = re.compile(rb"\s*\Z")  # matched, not .strip(): no copy of a big body
_OPENS_OBJECT = re.compile(rb"\s*\{")
STOPPING = "the edge is shutting down and the body did not arrive in time: send it again"
EXTENSIONS = frozenset({"json", "gif", "js", "html"})
NATIVE_MARK = "band"


class BadHit(BandError):
    """A hit the edge refuses; ``status`` is 400, 404, 408, 413 or 503 (busy, with
    ``retry_after`` seconds)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def refusal(request: web.Request, bad: BadHit) -> web.Response:
    """The answer to a refused hit. When its body was not read to the end the connection
    closes: the rest of a refused body is neither read nor buffered."""
    resp = json_response({"message": bad.message}, bad.status)
    if bad.retry_after is not None:
        resp.headers["Retry-After"] = str(bad.retry_after)
    if not request.content.is_eof():
        resp.force_close()
    return resp


def busy(exc: OverBudget) -> BadHit:
    return BadHit(503, str(exc), retry_after=RETRY_AFTER_S)


@dataclass
class Hit:
    """A parsed hit: the message plus how the answer must be shaped."""

    message: dict[str, Any]
    native: bool  # a `band` segment: answer with the whole typed response as JSON
    image: bool  # an image request (`.gif` or Accept: image/*): channel `pixel`


@dataclass(frozen=True)
class Target:
    """What the path says: native mode, extension, and the remaining segments."""

    segments: list[str]
    native: bool
    extension: str


# --- path ---------------------------------------------------------------------
def parse_path(raw_path: str) -> Target:
    """Split and decode a raw path; drop ``band`` marks and a known extension.

    Raises:
        BadHit: a segment is not valid percent-encoded UTF-8.
    """
    path = raw_path.split("?", 1)[0]
    if "%" not in path:  # the common case: nothing to decode
        segments = [seg for seg in path.split("/") if seg]
    else:
        segments = []
        for raw in path.split("/"):
            if not raw:
                continue
            try:
                segments.append(unquote(raw, errors="strict"))
            except UnicodeDecodeError:
                raise BadHit(400, "path is not valid UTF-8") from None
    native = NATIVE_MARK in segments
    if native:
        segments = [s for s in segments if s != NATIVE_MARK]
    extension = ""
    if segments and "." in segments[-1]:
        base, ext = segments[-1].rsplit(".", 1)
        if ext.lower() in EXTENSIONS:
            extension = ext.lower()
            segments[-1] = base
            if not base:
                segments.pop()
    return Target(segments, native, extension)


# --- fields ---------------------------------------------------------------------
def parse_query(raw_query: str, max_fields: int, max_depth: int = 32) -> dict[str, Any]:
    """Query fields as front's ``qs.parse`` read them (nested objects, arrays).

    Raises:
        BadHit: invalid UTF-8, more than ``max_fields`` fields, a nesting bomb.
    """
    return _qs(raw_query, qs.QUERY, max_fields, max_depth) if raw_query else {}


def _qs(text: str, grammar: qs.Grammar, max_fields: int, max_depth: int) -> dict[str, Any]:
    try:
        return qs.parse(text, grammar, max_fields=max_fields, max_depth=max_depth)
    except qs.QsError as exc:
        raise BadHit(400, str(exc)) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _too_deep(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


def parse_json_object(body: bytes | bytearray, max_depth: int, max_fields: int) -> dict[str, Any]:
    """A JSON object body; empty is ``{}``.

    Raises:
        BadHit: not JSON (the parser's message), not an object, not UTF-8, too deep,
            text that is not Unicode.
    """
    value = load_json_object(body, max_depth, max_fields)
    check_text(value, body)
    return value


def check_text(value: dict[str, Any], body: bytes | bytearray) -> None:
    """Refuse JSON text that is not Unicode: ``"\\ud800"`` is valid JSON, but a lone
    surrogate cannot be encoded again, so the event could never be published.

    Raises:
        BadHit: 400 naming the first such string.
    """
    if wire.SURROGATE_ESCAPE.search(body) is not None:
        problem = wire.lone_surrogate(value)
        if problem is not None:
            raise BadHit(400, f"malformed JSON body: {problem} (text must be valid Unicode)")


def load_json_object(body: bytes | bytearray, max_depth: int, max_fields: int) -> dict[str, Any]:
    """:func:`parse_json_object` before its text check (the WebSocket reads ``id__`` first).

    Raises:
        BadHit: as :func:`parse_json_object`, except for lone surrogates.
    """
    if _BLANK.match(body):
        return {}
    try:
        # decoded here, strictly: json.loads would let the bytes of a lone surrogate through
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadHit(400, "body is not valid UTF-8") from None
    except RecursionError:
        raise BadHit(400, f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise BadHit(400, f"malformed JSON body: {exc}") from None
    if not isinstance(value, dict):
        raise BadHit(400, f"JSON body must be an object, got {type(value).__name__}")
    if len(value) > max_fields:
        raise BadHit(400, f"too many body fields (limit {max_fields})")
    # nesting deeper than max_depth needs at least that many brackets: skip the walk otherwise
    if body.count(b"{") + body.count(b"[") > max_depth and _too_deep(value, max_depth):
        raise BadHit(400, f"JSON nested deeper than {max_depth} levels")
    return value


def parse_form(body: bytes | bytearray, max_fields: int, max_depth: int = 32) -> dict[str, Any]:
    """A urlencoded body as front read it: ``qs.parse`` to depth 2, no arrays."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadHit(400, "form body is not valid UTF-8") from None
    return _qs(text, qs.FORM, max_fields, max_depth)


async def read_body(request: web.Request, target: Target, config: EdgeConfig, held: Held) -> dict[str, Any]:
    """Body fields by content type (or by the ``.json`` extension), within size and time
    limits and the edge's body budget (``held`` keeps this hit's share).

    Raises:
        BadHit: 413 over the size limit, 408 too slow, 400 malformed, 503 over the budget.
    """
    if request.method != "POST" or (request.content_length == 0):
        return {}
    ctype = request.content_type
    try:
        async with held.reading(config.body_timeout_s):
            if ctype == "multipart/form-data" and target.extension != "json":
                # aiohttp parses it whole: reserve what it may hold (a chunked one: the limit)
                held.take(request.content_length or config.max_body_bytes)
                return await _read_multipart(request, config)
            body = await bodies.read_body(request, held, config.max_body_bytes)
    except (web.HTTPRequestEntityTooLarge, bodies.TooLarge):
        raise BadHit(413, f"body larger than {config.max_body_bytes} bytes") from None
    except bodies.OverBudget as exc:
        raise busy(exc) from None
    except TimeoutError:
        if held.stopping:
            raise BadHit(503, STOPPING, retry_after=RETRY_AFTER_S) from None
        raise BadHit(408, "body not received in time") from None
    except ValueError as exc:  # aiohttp's multipart/form parsing
        raise BadHit(400, f"malformed body: {exc}") from None
    except HttpProcessingError as exc:  # a malformed part header, a body cut short
        raise BadHit(400, f"malformed body: {parser_message(exc.message)}") from None
    if target.extension == "json" or ctype == "application/json" or ctype.endswith("+json"):
        return parse_json_object(body, config.max_depth, config.max_fields)
    if ctype == "application/x-www-form-urlencoded":
        return parse_form(body, config.max_fields, config.max_depth)
    if _OPENS_OBJECT.match(body):  # a JSON object sent as text/plain or without a type
        return parse_json_object(body, config.max_depth, config.max_fields)
    return {}


def parser_message(text: str) -> str:
    """aiohttp's parser messages quote the raw bytes on further lines: keep the sentence."""
    return text.strip().split("\n", 1)[0].rstrip(":") or "the HTTP parser refused it"


async def _read_multipart(request: web.Request, config: EdgeConfig) -> dict[str, Any]:
    form = await request.post()
    if len(form) > config.max_fields:
        raise BadHit(400, f"too many form fields (limit {config.max_fields})")
    fields: dict[str, Any] = {}
    for name, value in form.items():
        if isinstance(value, str):
            fields[name] = value
        elif isinstance(value, web.FileField):  # a file part: not a field; release its temp file
            value.file.close()
    problem = wire.lone_surrogate(fields)
    if problem is not None:  # a part name in bytes that are not UTF-8
        raise BadHit(400, f"malformed multipart body: {problem} (part names must be UTF-8)")
    return fields


# --- who ---------------------------------------------------------------------------
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


def pick_uid(*candidates: Any) -> str:
    """The first candidate that is a valid uid, else a new id."""
    for value in candidates:
        uid = valid_uid(value)
        if uid is not None:
            return uid
    return new_id()


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
    if value is None or value == "":
        raise BadHit(400, f"{what} is missing: use /<service>/<name>")
    if not wire.is_token(value):
        shown = repr(value)[:64]
        raise BadHit(400, f"{what} {shown} is not valid: letters, digits, '_' and '-' only")
    return str(value)


def build_message(*, key: str, service: str, name: str, channel: str, project: int, uid: str, td: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The message in its documented field order (design.md)."""
    return {
        "key": key,
        "service": service,
        "name": name,
        "channel": channel,
        "projectId": project,
        "uid": uid,
        "td": td,
        "data": data,
        "id": new_id(),
        "time": time.time_ns() // 1_000_000,
    }


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


def td_of(request: web.Request, client_ip: ClientIP) -> dict[str, Any]:
    """Transport data; ``host`` is the ``X-Forwarded-Host`` a trusted proxy passed, else ``Host``.

    Raises:
        BadHit: a header that goes into it is not UTF-8.
    """
    headers = request.headers
    host = client_ip.host(request.remote, headers) or header_text(headers, "Host")
    return {
        "ip": client_ip(request.remote, headers),
        "ua": header_text(headers, "User-Agent"),
        "ref": header_text(headers, "Referer"),
        "host": host,
    }


async def read_hit(request: web.Request, config: EdgeConfig, snapshot: Snapshot, client_ip: ClientIP, held: Held) -> Hit:
    """Turn one HTTP request into a :class:`Hit`; ``held``: its share of the body budget.

    Raises:
        BadHit: the hit cannot become a message (nothing is published).
    """
    target = parse_path(request.raw_path)
    query = parse_query(request.rel_url.raw_query_string, config.max_fields, config.max_depth)
    body = await read_body(request, target, config, held)
    if len(query) + len(body) > config.max_fields:
        raise BadHit(400, f"too many fields (limit {config.max_fields})")
    data: dict[str, Any] = {**body, **query}
    segments = target.segments

    routed = snapshot.path_route(segments) if snapshot.paths else None
    if routed is not None:
        route, params = routed
        data.update(params)
        _, _, service, name = route.key.split(".")
        pid: Any = data.get("projectId")
    else:
        if len(segments) > 3:
            raise BadHit(404, "no route: use /<service>/<name>[/<projectId>]")
        path_service = segments[0] if segments else None
        asked: Any = query.get("service") or body.get("service") or path_service
        asked = config.aliases.get(asked, asked) if isinstance(asked, str) else asked
        service = check_token("service", asked)
        name = check_token("name", (segments[1] if len(segments) > 1 else None) or query.get("name") or body.get("name"))
        pid = segments[2] if len(segments) > 2 else (query.get("projectId") if "projectId" in query else body.get("projectId"))

    image = target.extension == "gif" or request.headers.get("Accept", "").startswith("image/")
    cookie = request.cookies.get(config.cookie_name) if "Cookie" in request.headers else None
    uid = pick_uid(query.get("uid"), body.get("uid"), cookie)
    message = build_message(
        key=f"{wire.KEY_PREFIX}.{service}.{name}",
        service=service,
        name=name,
        channel="pixel" if image else "http",
        project=project_id(pid),
        uid=uid,
        td=td_of(request, client_ip),
        data=data,
    )
    if routed is not None:  # the handler gets them as keywords, over the message's own fields
        message[wire.PARAMS_FIELD] = routed[1]
    return Hit(message, target.native, image)


__all__ = ["BadHit", "refusal", "busy", "header_text", "parser_message", "Hit", "Target", "read_hit", "parse_path", "parse_query", "parse_json_object", "load_json_object", "check_text", "parse_form", "ClientIP", "pick_uid", "valid_uid", "project_id", "build_message", "check_token", "td_of"]
