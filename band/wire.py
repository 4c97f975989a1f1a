"""The wire contract: every subject, header, queue group and JSON body band puts on NATS.

This module is the only place those names live. ``band/`` (the services) and
``broker/`` (the edge) both import it; ``docs/protocol.md`` describes it section by
section. A service written in another language that follows this file takes part.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from .errors import BandError

# --- revision ---------------------------------------------------------------
PROTOCOL_VERSION: Final = "3"  # 2: enrichers get only their props (enrich_request); 3: bots (BOT_FIELD, MD_BOTS)

# --- subjects ----------------------------------------------------------------
ENRICH_PREFIX: Final = "band.enrich"  # band.enrich.<key>        scatter-gather
HANDLE_PREFIX: Final = "band.handle"  # band.handle.<key>        request/reply
RPC_PREFIX: Final = "band.rpc"  # band.rpc.<service>.<method>    request/reply
WS_PREFIX: Final = "band.ws"  # band.ws.<uid>                    server push to sockets
DLQ_PREFIX: Final = "band.dlq"  # band.dlq.<service>             dead letters
EVENTS_ROOT: Final = "in"  # routing keys: in.gen.<service>.<name>
EVENTS_SUBJECTS: Final = "in.>"
KEY_PREFIX: Final = "in.gen"

# --- JetStream ---------------------------------------------------------------
STREAM: Final = "BAND_EVENTS"
DLQ_STREAM: Final = "BAND_DLQ"  # keeps band.dlq.> so dead letters can be listed and replayed
DLQ_SUBJECTS: Final = "band.dlq.>"
JS_API: Final = "$JS.API"
HEARTBEAT_STATUS: Final = "100"  # a status message that only says the server is there
PULL_EXPIRED_STATUS: Final = "408"  # a pull request's time ran out (pull again)


# --- the store's answers of any size (docs/protocol.md, "Answers of any size") ---------------
# ``band.rpc.store.stream`` {sql, params} opens a cursor: {"cursor", "next", "columns"}.
# The caller then asks ``next`` (``band.rpc.store.next.<store instance>``) {"cursor"} for
# each chunk, at most STREAM_IN_FLIGHT requests outstanding; a chunk's body is rows as
# JSON arrays, one a line, at most STREAM_CHUNK_BYTES; the last carries STREAM_DONE_HEADER.
# A cursor nobody asks for STREAM_IDLE_S seconds is closed and its query cancelled.
STORE_NEXT_PREFIX: Final = "band.rpc.store.next"
STREAM_DONE_HEADER: Final = "Band-Stream-Done"
STREAM_CHUNK_BYTES: Final = 512 * 1024
STREAM_IN_FLIGHT: Final = 2
STREAM_IDLE_S: Final = 60.0


def store_next_subject(instance: str) -> str:
    """Where the chunks of one store instance's cursors are asked for."""
    return f"{STORE_NEXT_PREFIX}.{instance}"


def pull_subject(durable: str, stream: str = STREAM) -> str:
    """Where a pull request for ``durable``'s next events goes (JetStream's API)."""
    return f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}"

# --- uploads: files in the JetStream object store (ADR-20) -------------------------
# POST /upload/<service>/<name> stores each file part as one object, then sends the
# message with ``files``: a list of references (FILE_REF_FIELDS), so handlers and
# listeners read the bytes from the bucket instead of the message.
UPLOAD_PATH: Final = "upload"  # the first path segment of an upload
UPLOAD_BUCKET: Final = "band_uploads"  # default bucket (the edge's upload_bucket knob)
FILES_FIELD: Final = "files"  # the message field listing the stored files
FILE_REF_FIELDS: Final = ("param", "name", "type", "size", "sha256", "bucket", "object")
UPLOAD_CHUNK_BYTES: Final = 128 * 1024  # one chunk message: well under any max_payload
OBJECT_ROLLUP_HEADER: Final = "Nats-Rollup"  # the meta message replaces earlier ones
OBJECT_ROLLUP_SUBJECT: Final = "sub"


def upload_object(service: str, name: str, upload_id: str, index: int) -> str:
    """``<service>/<name>/<upload id>/<n>``: the object of the n-th file of an upload
    (the upload id is also the message's ``id``)."""
    return f"{service}/{name}/{upload_id}/{index}"


def object_stream(bucket: str) -> str:
    """The stream that holds a bucket: ``OBJ_<bucket>``."""
    return f"OBJ_{bucket}"


def object_chunks_subject(bucket: str, nuid: str) -> str:
    """``$O.<bucket>.C.<nuid>``: an object's data, in order, in chunks."""
    return f"$O.{bucket}.C.{nuid}"


def object_meta_subject(bucket: str, name: str) -> str:
    """``$O.<bucket>.M.<base64url(name)>``: the object's info (JSON, last one wins)."""
    return f"$O.{bucket}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


# --- micro protocol (ADR-32) -----------------------------------------------------
SRV_PREFIX: Final = "$SRV"
MICRO_PING_TYPE: Final = "io.nats.micro.v1.ping_response"
MICRO_INFO_TYPE: Final = "io.nats.micro.v1.info_response"
MICRO_STATS_TYPE: Final = "io.nats.micro.v1.stats_response"

# --- headers -----------------------------------------------------------------
ERROR_HEADER: Final = "Nats-Service-Error"  # ADR-32: error description
ERROR_CODE_HEADER: Final = "Nats-Service-Error-Code"  # ADR-32: numeric code
MSG_ID_HEADER: Final = "Nats-Msg-Id"  # JetStream de-duplication
SERVICE_HEADER: Final = "Band-Service"  # who answered (enricher replies, dead letters)
STATUS_HEADER: Final = "Status"  # set by NATS itself on status messages
NO_RESPONDERS_STATUS: Final = "503"  # ...such as "nobody subscribes to that request subject"
DLQ_SUBJECT_HEADER: Final = "Band-Subject"  # a dead letter: the subject the event came on
DLQ_METHOD_HEADER: Final = "Band-Method"  # ...and the listener that gave up on it

# --- reply inboxes -------------------------------------------------------------
# Each client's replies come back under _INBOX_<client name>.<nuid>; nats.conf grants
# each user only its own prefix, so nobody reads replies meant for another.
INBOX_PREFIX: Final = "_INBOX_"

# W3C Trace Context, on every request and publish while tracing is on (band.tracing)
TRACEPARENT_HEADER: Final = "traceparent"
TRACESTATE_HEADER: Final = "tracestate"

# --- endpoint metadata (values are strings, as ADR-32 requires) -------------------
ROLE_HANDLER: Final = "handler"
ROLE_ENRICHER: Final = "enricher"
ROLE_LISTENER: Final = "listener"
ROLE_RPC: Final = "rpc"
ROLES: Final = (ROLE_HANDLER, ROLE_ENRICHER, ROLE_LISTENER, ROLE_RPC)

# --- the message -------------------------------------------------------------
MESSAGE_FIELDS: Final = ("key", "service", "name", "channel", "projectId", "uid", "td", "data", "id", "time")
# Path parameters of a custom route (``path='/x/:id'``): an object the edge adds to the
# message; the service passes them to the handler as keywords over the message fields.
PARAMS_FIELD: Final = "params"
# The trace id (32 lowercase hex digits) the edge adds while tracing is on, so a stored
# event can be joined with its trace.
TRACE_ID_FIELD: Final = "trace_id"
# Why the edge judged the hit not a person's (``crawler``, ``headless``, ``no_ua``,
# ``spam_ref``, ``burst``); absent for a person. The store keeps it in the ``bot`` column.
BOT_FIELD: Final = "bot"
# The edge's schema check of an event that failed it (``band/schemas.py``): an object
# ``{"schema": key, "version": n, "mode": "warn"|"enforce", "errors": [{"path", "rule",
# "message"}]}``; absent when the key has no schema or the event passed. ``mode: enforce``
# tells the store to keep the event in ``failed_events`` instead of its table.
SCHEMA_ERRORS_FIELD: Final = "schema_errors"
DEFAULT_HANDLER_TIMEOUT_MS: Final = 200
DEFAULT_ENRICH_TIMEOUT_MS: Final = 200

# \Z, not $: "$" also matches before a trailing newline ("track\n" would pass)
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+\Z")
UID_RE: Final = re.compile(r"^[0-9]{10,22}\Z")  # the web SDK's pattern
UID_MAX: Final = 2**64 - 1  # uids are stored as UInt64


# --- identity (docs/identity.md) ------------------------------------------------
# Identity changes are events of service IDENTITY_SERVICE, ``in.gen.identity.<action>``,
# applied by the store in stream order: identify {uid, data: {user_id, traits}}, alias
# {data: {previous_id, user_id}}, link {uid, data: {identifier}}, merge {data: {a, b, by}},
# split {data: {identifier, by}}. Any event with a non-empty data.user.id is an identify
# of its uid too. Identifiers are ``kind:value``.
IDENTITY_SERVICE: Final = "identity"
IDENTITY_ACTIONS: Final = ("identify", "alias", "link", "merge", "split")
IDENTIFIER_KINDS: Final = ("uid", "user", "partner", "phone")
MAX_IDENTIFIER_CHARS: Final = 512  # of the value after ``kind:``
MAX_TRAITS: Final = 100  # per identify
MAX_TRAIT_KEY: Final = 256  # characters of a trait's name
MAX_TRAIT_VALUE: Final = 8192  # characters of its value (JSON for anything but text)
_DIGITS = re.compile(r"^[0-9]+\Z")


def traits_problem(traits: object) -> str | None:
    """What is wrong with an identify's ``traits`` (``None``: nothing; absent is fine)."""
    if traits is None:
        return None
    if not isinstance(traits, Mapping):
        return "traits must be an object of name: value"
    if len(traits) > MAX_TRAITS:
        return f"at most {MAX_TRAITS} traits per identify, got {len(traits)}"
    for key, value in traits.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if not key or len(key) > MAX_TRAIT_KEY or len(text) > MAX_TRAIT_VALUE:
            return (f"trait {str(key)[:40]!r}: names are 1 to {MAX_TRAIT_KEY} characters, "
                    f"values at most {MAX_TRAIT_VALUE}")
    return None


class IdentifierError(BandError, ValueError):
    """An identifier that cannot be one (empty, too long, an unknown kind, a bad uid)."""


def identifier(value: object, bare: str = "") -> str:
    """``value`` as a checked ``kind:value`` identifier.

    ``bare`` says what a value without a known ``kind:`` prefix is: ``""`` refuses it,
    ``"user"`` makes it a user id, ``"auto"`` a uid when all digits, else a user id
    (alias's rule).

    Raises:
        IdentifierError: naming what is wrong.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise IdentifierError(f"an identifier must be text like user:42 or uid:123, got {type(value).__name__}")
    if not value and bare != "user":
        raise IdentifierError("the identifier is empty (give kind:value, e.g. user:42)")
    kind, sep, rest = value.partition(":")
    if not sep or kind not in IDENTIFIER_KINDS:
        if bare == "user" or (bare == "auto" and not _DIGITS.match(value)):
            kind, rest = "user", value
        elif bare == "auto":
            kind, rest = "uid", value
        else:
            raise IdentifierError(f"{_shown(value)!r} is not kind:value (kinds: {', '.join(IDENTIFIER_KINDS)})")
    if not rest or not rest.strip():
        raise IdentifierError(f"the {kind} id is empty")
    if len(rest) > MAX_IDENTIFIER_CHARS:
        raise IdentifierError(f"the {kind} id has {len(rest)} characters; at most {MAX_IDENTIFIER_CHARS}")
    if kind == "uid" and not (_DIGITS.match(rest) and len(rest) <= 20 and 0 < int(rest) <= UID_MAX):
        raise IdentifierError(f"uid {_shown(rest)!r} is not a visitor uid (a decimal number from 1 to {UID_MAX})")
    if kind == "phone" and not _DIGITS.match(rest):
        raise IdentifierError(f"phone {_shown(rest)!r} must be digits only")
    if kind == "partner" and not all(rest.partition(":")[::2]):
        raise IdentifierError(f"partner {_shown(rest)!r} must be partner:<partner>:<id>")
    return f"{kind}:{rest}"


def user_identifier(user_id: object) -> str:
    """``user:<user_id>`` for a site's user id (one already written ``user:...`` is kept).

    Raises:
        IdentifierError: empty, too long, not text.
    """
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str):
        raise IdentifierError(f"a user id must be text, got {type(user_id).__name__}")
    return identifier(user_id if user_id.startswith("user:") else f"user:{user_id}")


def uid_identifier(uid: object) -> str:
    """``uid:<uid>`` for a uid given as a number or decimal text.

    Raises:
        IdentifierError: not a uid.
    """
    text = str(uid) if isinstance(uid, int) and not isinstance(uid, bool) else uid
    if not isinstance(text, str) or text.startswith("uid:"):
        return identifier(text)
    return identifier(f"uid:{text}")


def is_token(value: object) -> bool:
    """True when ``value`` can stand as one NATS subject token in a routing key.

    Letters, digits, ``_`` and ``-`` only: no ``.``, ``*``, ``>``, whitespace or empty.
    """
    return isinstance(value, str) and bool(_TOKEN.match(value))


def is_uid(value: object) -> bool:
    """True when ``value`` is a visitor uid: the SDK's pattern, not all zeros (``0`` is
    what the SDK sends before it knows one) and within ``UID_MAX`` (a longer number would
    not fit the store's ``UInt64``)."""
    return isinstance(value, str) and bool(UID_RE.match(value)) and bool(value.strip("0")) and (len(value) < 20 or int(value) <= UID_MAX)


def is_service_name(value: object) -> bool:
    """ADR-32 service names: letters, digits, ``_`` and ``-`` (the token rule, since
    a service name is also the ``<service>`` token of its routing keys)."""
    return is_token(value)


def routing_key(service: str, name: str) -> str:
    """``in.gen.<service>.<name>``; both must be tokens (see :func:`is_token`)."""
    if not is_token(service) or not (is_token(name) or name == "*"):
        raise ValueError(f"not a valid routing key part: service={service!r} name={name!r}")
    return f"{KEY_PREFIX}.{service}.{name}"


def enrich_subject(key: str) -> str:
    return f"{ENRICH_PREFIX}.{key}"


def handle_subject(key: str) -> str:
    return f"{HANDLE_PREFIX}.{key}"


def rpc_subject(service: str, method: str) -> str:
    return f"{RPC_PREFIX}.{service}.{method}"


def ws_subject(uid: str) -> str:
    return f"{WS_PREFIX}.{uid}"


def dlq_subject(service: str) -> str:
    return f"{DLQ_PREFIX}.{service}"


def key_prefix_subjects(prefix: str) -> list[str]:
    """Subjects matching a routing-key prefix by whole tokens: ``p`` and ``p.>``.

    ``in.gen.track`` matches ``in.gen.track.page`` but not ``in.gen.tracker.x``.
    """
    return [prefix, f"{prefix}.>"]


def key_matches(prefix: str, key: str) -> bool:
    """Whole-token prefix match, the same rule NATS applies to ``prefix.>``."""
    return key == prefix or key.startswith(prefix + ".")


def durable_name(service: str, method: str) -> str:
    """The JetStream durable consumer of ``service``'s durable listener ``method``."""
    return f"{service}_{method}"


def queue_group(service: str) -> str:
    """Every subscription of a service uses its name as the queue group."""
    return service


# --- JSON --------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    to_wire = getattr(value, "to_wire", None)
    if callable(to_wire):
        return to_wire()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default)  # the fallback
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS  # {1: x} -> {"1": x}, as json does


def encode(value: Any) -> bytes:
    """JSON, UTF-8, compact. Datetimes become ISO strings, sets lists.

    orjson first (about 6x faster on a message); what it refuses (integers past 64 bits)
    goes through the standard encoder, so the output is the same JSON either way.
    """
    try:
        return orjson.dumps(value, default=_default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _ENCODER.encode(value).encode()


_BIG_NUMBER = re.compile(rb"(?:^|[:\[,])\s*-?\d{19}")  # may also match inside a string: then json decodes it
# A JSON escape of a surrogate (\uD800-\uDFFF): only then can json's result hold a lone one.
SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class DecodeError(BandError, ValueError):
    """A body that is not the JSON this contract expects."""


def _shown(text: str, limit: int = 80) -> str:
    """``text`` safe to put in a message: lone surrogates as ``\\udcff``, cut at ``limit``."""
    return text.encode("utf-8", "backslashreplace").decode()[:limit]


def lone_surrogate(value: Any, where: str = "") -> str | None:
    """Where ``value`` holds text that is not Unicode (a lone surrogate, which no UTF-8
    encoder takes), as ``"lone surrogate \\ud800 at data.a"``; ``None`` when every
    string in it, keys included, is valid text.

    JSON can spell one (``"\\ud800"``) and Python's json reads it; so do header and
    file-name bytes that are not UTF-8 (decoded with ``surrogateescape``). Such text
    cannot be encoded again, so whoever takes it in refuses it up front, naming where.
    """
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError as exc:
                    return f"lone surrogate \\u{ord(item[exc.start]):04x} at {_shown(path) or 'the top level'}"
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not key.isascii():
                    stack.append((key, name))
                stack.append((child, name))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None


def decode(data: bytes) -> Any:
    """Parse a JSON body; an empty body is ``None``.

    Text must be Unicode: a lone surrogate (``"\\ud800"``, or its bytes) is refused, as
    orjson refuses it, since nothing could encode it again (a reply, a publish, an insert
    would fail later, far from the cause).
    """
    if not data:
        return None
    if _BIG_NUMBER.search(data) is None:
        try:
            return orjson.loads(data)  # strict JSON, strict UTF-8: NaN/Infinity and lone surrogates are refused
        except orjson.JSONDecodeError as exc:
            if "depth" in str(exc):
                raise DecodeError("body is nested too deeply") from None
            raise DecodeError(f"body is not valid JSON: {exc}") from None
    try:  # a number of 19+ digits: orjson would read it as a float, json keeps it exact
        value = json.loads(bytes(data).decode("utf-8"))  # decoded here: json would let surrogate bytes through
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise DecodeError("body is nested too deeply") from None
    if SURROGATE_ESCAPE.search(data) is not None:
        problem = lone_surrogate(value)
        if problem is not None:
            raise DecodeError(f"body is not valid JSON: {problem}")
    return value


def decode_object(data: bytes) -> dict[str, Any]:
    """Parse a JSON object body (requests to handlers, enrichers, RPC methods)."""
    value = decode(data)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(f"body must be a JSON object, got {type(value).__name__}")
    return value


# --- errors on the wire (ADR-32 headers) ----------------------------------------
def error_headers(code: int, description: str) -> dict[str, str]:
    """The two micro error headers; CR/LF are folded so no header can be injected. A code
    that is not a number (``RPCError(404, "msg")``, arguments swapped) is sent as 500: the
    caller still gets an answer, not a timeout."""
    clean = " ".join(str(description).split()) or "error"
    try:
        number = int(code)
    except (TypeError, ValueError):
        number = 500
    return {ERROR_HEADER: clean[:1024], ERROR_CODE_HEADER: str(number)}


def error_from_headers(headers: Mapping[str, str] | None) -> tuple[int, str] | None:
    """``(code, description)`` when a reply carries the micro error headers."""
    if not headers:
        return None
    description = headers.get(ERROR_HEADER)
    code = headers.get(ERROR_CODE_HEADER)
    if description is None and code is None:
        return None
    try:
        number = int(code or 500)
    except ValueError:
        number = 500
    return number, description or "error"


# --- the message -------------------------------------------------------------------
def get_path(message: Mapping[str, Any], path: str) -> Any:
    """Value at a dot-path such as ``td.ip``; a missing step gives ``None``."""
    value: Any = message
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return None
    return value


# --- enrich requests (revision 2) ------------------------------------------------
# The edge sends ``band.enrich.<key>`` one small object instead of the whole message:
# the key, the id, and the union of the matching enrichers' props as dot-path -> value.
# When any matching enricher declares no props (or its service announces revision 1)
# the edge sends the whole message, as revision 1 did; services read both forms.
ENRICH_PROPS_FIELD: Final = "props"


def enrich_request(message: Mapping[str, Any], paths: tuple[str, ...]) -> dict[str, Any]:
    """``{"key", "id", "props": {dot-path: value}}`` for ``band.enrich.<key>``, and the
    message's ``bot`` reason when it has one (revision 3), so an enricher that declined
    bots skips it."""
    request = {"key": message["key"], "id": message.get("id"), ENRICH_PROPS_FIELD: {p: get_path(message, p) for p in paths}}
    bot = message.get(BOT_FIELD)
    if bot:
        request[BOT_FIELD] = bot
    return request


def enrich_value(request: Mapping[str, Any], path: str) -> Any:
    """A dot-path's value in an enrich request of either form (props or the whole message)."""
    props = request.get(ENRICH_PROPS_FIELD)
    if isinstance(props, dict):
        return props.get(path)
    return get_path(request, path)


def speaks_props(service_metadata: Mapping[str, Any] | None) -> bool:
    """A service of revision 2 or later reads props-only enrich requests."""
    version = (service_metadata or {}).get("band")
    return isinstance(version, str) and version.isdigit() and int(version) >= 2


# --- discovery metadata (ADR-32 ``metadata``: string → string) ----------------------
# Service metadata: {"band": PROTOCOL_VERSION}. Endpoint metadata keys below; ``keys``
# and ``props`` are JSON text because ADR-32 metadata values must be strings.
MD_ROLE: Final = "role"  # handler | enricher | listener | rpc
MD_KEY: Final = "key"  # handler: its routing key (``in.gen.go.*`` for a wildcard)
MD_KEYS: Final = "keys"  # enricher/listener: JSON list of key prefixes ([] = every key)
MD_PROPS: Final = "props"  # enricher: JSON object, argument name -> dot-path
MD_ALIAS: Final = "alias"  # handler: the service name it answers for, if not its own
MD_PATH: Final = "path"  # handler: custom HTTP path such as ``/x/:id`` ("" if none)
MD_TIMEOUT: Final = "timeout"  # handler: milliseconds the edge waits
MD_METHOD: Final = "method"  # the Python function's name
MD_DURABLE: Final = "durable"  # listener: "true" for a JetStream durable consumer
MD_BOTS: Final = "bots"  # enricher: "false" when it is not asked for hits the edge flagged as bots


def endpoint_metadata(role: str, **fields: Any) -> dict[str, str]:
    """Metadata for one endpoint; lists/dicts become JSON text, None becomes ""."""
    md = {MD_ROLE: role}
    for name, value in fields.items():
        if value is None:
            md[name] = ""
        elif isinstance(value, (list, dict)):
            md[name] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, bool):
            md[name] = "true" if value else "false"
        else:
            md[name] = str(value)
    return md


def metadata_list(md: Mapping[str, str], name: str) -> list[str]:
    """Read a JSON-list metadata value; anything malformed reads as ``[]``."""
    try:
        value = json.loads(md.get(name) or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def prefix_subject(prefix_root: str, key_prefix: str) -> str:
    """The subscription subject for a key prefix under ``band.enrich`` etc.

    Routing keys always have four tokens (``in.gen.<service>.<name>``): a full key
    subscribes exactly, a shorter prefix with ``.>``, and no prefix means every key.
    """
    if not key_prefix:
        return f"{prefix_root}.{EVENTS_ROOT}.>" if prefix_root else EVENTS_SUBJECTS
    base = f"{prefix_root}.{key_prefix}" if prefix_root else key_prefix
    return base if key_prefix.count(".") >= 3 else f"{base}.>"


__all__ = [
    "BOT_FIELD",
    "DEFAULT_ENRICH_TIMEOUT_MS",
    "DEFAULT_HANDLER_TIMEOUT_MS",
    "DLQ_METHOD_HEADER",
    "DLQ_PREFIX",
    "DLQ_STREAM",
    "DLQ_SUBJECTS",
    "DLQ_SUBJECT_HEADER",
    "ENRICH_PREFIX",
    "ENRICH_PROPS_FIELD",
    "ERROR_CODE_HEADER",
    "ERROR_HEADER",
    "EVENTS_ROOT",
    "EVENTS_SUBJECTS",
    "FILES_FIELD",
    "FILE_REF_FIELDS",
    "HANDLE_PREFIX",
    "HEARTBEAT_STATUS",
    "IDENTIFIER_KINDS",
    "IDENTITY_ACTIONS",
    "IDENTITY_SERVICE",
    "INBOX_PREFIX",
    "JS_API",
    "KEY_PREFIX",
    "MAX_IDENTIFIER_CHARS",
    "MAX_TRAITS",
    "MAX_TRAIT_KEY",
    "MAX_TRAIT_VALUE",
    "MD_ALIAS",
    "MD_BOTS",
    "MD_DURABLE",
    "MD_KEY",
    "MD_KEYS",
    "MD_METHOD",
    "MD_PATH",
    "MD_PROPS",
    "MD_ROLE",
    "MD_TIMEOUT",
    "MESSAGE_FIELDS",
    "MICRO_INFO_TYPE",
    "MICRO_PING_TYPE",
    "MICRO_STATS_TYPE",
    "MSG_ID_HEADER",
    "NO_RESPONDERS_STATUS",
    "OBJECT_ROLLUP_HEADER",
    "OBJECT_ROLLUP_SUBJECT",
    "PARAMS_FIELD",
    "PROTOCOL_VERSION",
    "PULL_EXPIRED_STATUS",
    "ROLES",
    "ROLE_ENRICHER",
    "ROLE_HANDLER",
    "ROLE_LISTENER",
    "ROLE_RPC",
    "RPC_PREFIX",
    "SCHEMA_ERRORS_FIELD",
    "SERVICE_HEADER",
    "SRV_PREFIX",
    "STATUS_HEADER",
    "STREAM",
    "SURROGATE_ESCAPE",
    "TRACEPARENT_HEADER",
    "TRACESTATE_HEADER",
    "TRACE_ID_FIELD",
    "UID_MAX",
    "UID_RE",
    "UPLOAD_BUCKET",
    "UPLOAD_CHUNK_BYTES",
    "UPLOAD_PATH",
    "WS_PREFIX",
    "DecodeError",
    "IdentifierError",
    "decode",
    "decode_object",
    "dlq_subject",
    "durable_name",
    "encode",
    "endpoint_metadata",
    "enrich_request",
    "enrich_subject",
    "enrich_value",
    "error_from_headers",
    "error_headers",
    "get_path",
    "handle_subject",
    "identifier",
    "is_service_name",
    "is_token",
    "is_uid",
    "key_matches",
    "key_prefix_subjects",
    "lone_surrogate",
    "metadata_list",
    "object_chunks_subject",
    "object_meta_subject",
    "object_stream",
    "prefix_subject",
    "pull_subject",
    "queue_group",
    "routing_key",
    "rpc_subject",
    "speaks_props",
    "traits_problem",
    "uid_identifier",
    "upload_object",
    "user_identifier",
    "ws_subject",
]
