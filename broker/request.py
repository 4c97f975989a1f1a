"""An HTTP request's parts of a hit: path, extensions, band mark, query and body fields.

Everything that can be wrong with the request is found here and raised as :class:`BadHit`
(status + a message naming the problem) before anything reaches NATS; the rules that make
the message (service and name, uid, ``td``, ``projectId``) are :mod:`broker.hit`'s, the
same for every transport.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from band import wire

from . import bodies, qs
from .bodies import RETRY_AFTER_S, Held, OverBudget
from .config import EdgeConfig
from .consent import WORDS, Consent
from .discovery import Snapshot
from .hit import BadHit, ClientIP, Hit, Parts, make_hit, pick_uid, project_id, td_of, valid_uid
from .render import json_response

_BLANK = re.compile(rb"\s*\Z")  # matched, not .strip(): no copy of a big body
_OPENS_OBJECT = re.compile(rb"\s*\{")
STOPPING = "the edge is shutting down and the body did not arrive in time: send it again"
EXTENSIONS = frozenset({"json", "gif", "js", "html"})
NATIVE_MARK = "band"


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


# --- the hit ---------------------------------------------------------------------
def cookies_of(request: web.Request, config: EdgeConfig) -> tuple[str | None, str | None]:
    """The ``uid`` cookie as sent, and the consent cookie's word (``granted``, ``denied``, else ``None``)."""
    if "Cookie" not in request.headers:
        return None, None
    cookies = request.cookies
    choice = cookies.get(config.consent_cookie_name)
    return cookies.get(config.cookie_name), choice if choice in WORDS else None


async def read_hit(request: web.Request, config: EdgeConfig, snapshot: Snapshot, client_ip: ClientIP, held: Held,
                   consent: Consent | None = None) -> Hit:
    """Turn one HTTP request into a :class:`~broker.hit.Hit`; ``held``: its share of the body budget.

    Raises:
        BadHit: the hit cannot become a message (nothing is published).
    """
    target = parse_path(request.raw_path)
    query = parse_query(request.rel_url.raw_query_string, config.max_fields, config.max_depth)
    body = await read_body(request, target, config, held)
    if len(query) + len(body) > config.max_fields:
        raise BadHit(400, f"too many fields (limit {config.max_fields})")
    segments = target.segments
    image = target.extension == "gif" or request.headers.get("Accept", "").startswith("image/")
    cookie, choice = cookies_of(request, config)
    parts = Parts(
        channel="pixel" if image else "http",
        service=None,
        name=None,
        query=query,
        payload=body,
        cookie=cookie,
        td=td_of(request.headers, request.remote, client_ip),
        native=target.native,
        image=image,
        headers=request.headers,
        method=request.method,
        path=request.path,
        choice=choice,
    )
    routed = snapshot.path_route(segments) if snapshot.paths else None
    if routed is not None:
        route, parts.params = routed
        _, _, parts.service, parts.name = route.key.split(".")
        parts.project = parts.params.get("projectId")
    else:
        if len(segments) > 3:
            raise BadHit(404, "no route: use /<service>/<name>[/<projectId>]")
        parts.service = query.get("service") or body.get("service") or (segments[0] if segments else None)
        parts.name = (segments[1] if len(segments) > 1 else None) or query.get("name") or body.get("name")
        parts.project = segments[2] if len(segments) > 2 else None
    return make_hit(parts, config.aliases, consent)


__all__ = ["BadHit", "ClientIP", "Hit", "Target", "busy", "check_text", "cookies_of", "load_json_object", "parse_form", "parse_json_object", "parse_path",
           "parse_query", "parser_message", "pick_uid", "project_id", "read_hit", "refusal", "valid_uid"]
