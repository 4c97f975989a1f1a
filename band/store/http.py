"""ClickHouse's HTTP interface on the embedded store, read-only, for any ClickHouse client.

clickhouse-connect, ``@clickhouse/client``, Grafana, Metabase, DBeaver, Superset and
curl speak ClickHouse's HTTP protocol; with this the dev stack answers them as a
ClickHouse server would. chDB does the work (parsing, formats, compression, execution),
through :mod:`.results`; this module only carries the protocol:

- ``GET``/``POST /`` with ``query`` (URL, body, or both: the URL's, a line feed, the
  body's), ``database``, ``default_format``, ``param_<name>``, ``query_id``; settings as
  URL parameters: the harmless ones (:data:`ALLOWED_SETTINGS`) apply, the protocol's
  (:data:`PROTOCOL`) are taken as the protocol, any other is refused as a
  ``readonly=1`` server refuses it (code 164);
- the answer streamed as ClickHouse writes it, with the ``X-ClickHouse-*`` headers and,
  when the client accepts it, compressed by ClickHouse (gzip, deflate, br, xz, zstd, lz4,
  bz2, snappy);
- errors as ClickHouse words them (``Code: 62. DB::Exception: ...``) with its HTTP status
  and ``X-ClickHouse-Exception-Code``; ``/ping`` and ``/replicas_status`` answer ``Ok.``;
- users: one, from the store's settings (``default`` without a password on localhost);
- a client that goes away cancels its query.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import ipaddress
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_urldispatcher import _default_expect_handler

from ..errors import ConfigError
from .backend import READONLY_CODE, StoreError, Unavailable
from .results import DEFAULT_FORMAT, Answer, Request, Results

SERVER_NAME = "band"
CHECK_CLIENT_S = 0.25  # how often a running query looks whether its client is still there
READ_BODY_BYTES = 1 << 16
# Settings a client may send: they shape the answer or lower a limit, never reach outside.
ALLOWED_SETTINGS = frozenset({
    "max_result_rows", "max_result_bytes", "result_overflow_mode", "max_execution_time", "timeout_overflow_mode",
    "max_rows_to_read", "max_bytes_to_read", "read_overflow_mode", "max_threads", "max_block_size",
    "extremes", "totals_mode", "join_use_nulls", "session_timezone", "date_time_output_format",
    "date_time_input_format", "cast_string_to_dynamic_use_inference", "client_protocol_version",
    "max_query_size", "limit", "offset", "prefer_column_name_to_alias", "aggregate_functions_null_for_empty",
    "use_query_cache_for_reads", "enable_http_compression", "http_zlib_compression_level",
})
ALLOWED_PREFIXES = ("output_format_", "format_")
# the protocol's own parameters (ClickHouse reads them, they are not settings to apply)
PROTOCOL = frozenset({
    "query", "database", "default_format", "query_id", "user", "password", "quota_key", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "wait_end_of_query", "buffer_size",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
    "add_http_cors_header", "http_native_compression_disable_checksumming_on_decompress", "role", "stacktrace",
    "http_response_buffer_size", "http_wait_end_of_query", "log_comment",
})
# refused with the read-only message even where ClickHouse would ignore an equal value
DENIED = re.compile(r"readonly|allow_ddl|allow_introspection|access|grant|user|role|profile|quota", re.I)
COMPRESSIONS = ("gzip", "deflate", "br", "xz", "zstd", "lz4", "bz2", "snappy")
_CONTENT_TYPES = (
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"), ("TSV", "text/tab-separated-values; charset=UTF-8"),
    ("CSV", "text/csv; charset=UTF-8"), ("JSONEachRow", "application/x-ndjson; charset=UTF-8"),
    ("JSONCompactEachRow", "application/x-ndjson; charset=UTF-8"), ("JSON", "application/json; charset=UTF-8"),
    ("XML", "application/xml; charset=UTF-8"), ("Pretty", "text/plain; charset=UTF-8"),
    ("Markdown", "text/markdown; charset=UTF-8"), ("Vertical", "text/plain; charset=UTF-8"),
    ("Values", "text/plain; charset=UTF-8"), ("Template", "text/plain; charset=UTF-8"),
)
# ClickHouse's HTTP status for its error codes (its HTTPHandler's table)
_STATUS = {
    516: 403, 192: 403, 193: 403, 497: 403, READONLY_CODE: 403, 194: 401,
    62: 400, 27: 400, 6: 400, 53: 400, 69: 400, 117: 400, 167: 400, 168: 400, 456: 400, 457: 400, 36: 400,
    73: 400,  # ClickHouse says 404 for an unknown format; a 400 reads as "fix the request" in every client
    60: 404, 46: 404, 47: 404, 50: 404, 56: 404, 81: 404, 115: 404, 63: 404, 170: 404,
    393: 413, 48: 501, 159: 408, 394: 500,
}
_CODE_NAMES = {62: "SYNTAX_ERROR", READONLY_CODE: "READONLY", 516: "AUTHENTICATION_FAILED", 393: "QUERY_IS_TOO_LARGE",
               73: "UNKNOWN_FORMAT", 115: "UNKNOWN_SETTING", 81: "UNKNOWN_DATABASE", 0: "UNKNOWN_EXCEPTION"}
_SAFE_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}\Z")
READ_ONLY = "band's ClickHouse interface is read-only"


@dataclass(frozen=True)
class Limits:
    """What every query gets at most; a client may ask for less, never more (0: no limit)."""

    max_execution_time: float = 300.0
    max_result_rows: int = 0
    max_result_bytes: int = 0
    max_query_bytes: int = 1 << 20


@dataclass(frozen=True)
class Settings:
    """The interface's settings (``STORE_HTTP_*`` in the store's config.yml)."""

    host: str = "127.0.0.1"
    port: int = 8123
    user: str = "default"
    password: str = ""
    database: str = "stats"
    limits: Limits = Limits()

    def check(self) -> None:
        """Raises ConfigError: bound beyond this machine without a password."""
        if not self.password and not _loopback(self.host):
            raise ConfigError(f"the store's ClickHouse interface would listen on {self.host} with no password: set "
                              "STORE_HTTP_PASSWORD (and STORE_HTTP_USER), or keep STORE_HTTP_HOST=127.0.0.1")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ClickHouseError(Exception):
    """An answer in ClickHouse's words: ``Code: N. DB::Exception: ...``, its status."""

    def __init__(self, message: str, code: int, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status or _STATUS.get(code, 500)
        text = message if message.startswith("Code:") else \
            f"Code: {code}. DB::Exception: {message}. ({_CODE_NAMES.get(code, 'BAD_ARGUMENTS')})"
        self.text = text

    @classmethod
    def of(cls, exc: StoreError) -> ClickHouseError:
        if exc.code == READONLY_CODE and not exc.message.startswith("Code:"):
            return cls(f"{READ_ONLY}: {exc.message}", READONLY_CODE)
        if isinstance(exc, Unavailable):
            return cls(exc.message, 0, 503)
        return cls(exc.message, exc.code)

    def response(self, query_id: str) -> web.Response:
        return web.Response(status=self.status, text=self.text + "\n", content_type="text/plain", charset="utf-8",
                            headers={"X-ClickHouse-Exception-Code": str(self.code), "X-ClickHouse-Query-Id": query_id,
                                     "X-ClickHouse-Server-Display-Name": SERVER_NAME})


Opener = Callable[[], Awaitable[Results]]  # the store's read channel once it is open (raises StoreError)


class Interface:
    """The protocol over :class:`~.results.Results` (see the module)."""

    def __init__(self, settings: Settings, results: Opener, timezone: str = "UTC") -> None:
        self.settings = settings
        self.results = results
        self.timezone = timezone

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.limits.max_query_bytes + READ_BODY_BYTES)
        app.router.add_route("GET", "/ping", _ok)
        app.router.add_route("HEAD", "/ping", _ok)
        app.router.add_route("GET", "/replicas_status", _ok)
        app.router.add_route("GET", "/", self.handle)
        app.router.add_route("POST", "/", self.handle, expect_handler=self._expect)
        return app

    async def _expect(self, request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue``: a body over the cap is refused before it is sent."""
        cap = self.settings.limits.max_query_bytes
        if request.content_length is not None and request.content_length > cap:
            return _too_large(request.content_length, cap).response(request.query.get("query_id", ""))
        await _default_expect_handler(request)
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        url = request.query
        query_id = url.get("query_id", "")
        query_id = query_id if _SAFE_ID.match(query_id) else str(uuid.uuid4())
        try:
            self._authenticate(request)
            if request.method == "GET" and "query" not in url:
                return web.Response(text="Ok.\n")  # what a server answers a bare GET /
            sql = await self._query(request)
            read = Request(sql=sql, params=_params(url), database=url.get("database") or self.settings.database,
                           default_format=url.get("default_format") or DEFAULT_FORMAT,
                           settings=self._settings(url), compression=_compression(request), query_id=query_id)
            answer = await (await self.results()).open(read)
        except ClickHouseError as exc:
            return exc.response(query_id)
        except StoreError as exc:
            return ClickHouseError.of(exc).response(query_id)
        return await self._stream(request, answer, query_id)

    def _authenticate(self, request: web.Request) -> None:
        user, password = _credentials(request)
        want = self.settings
        if not (hmac.compare_digest(user.encode(), want.user.encode())
                and hmac.compare_digest(password.encode(), want.password.encode())):
            raise ClickHouseError(f"Code: 516. DB::Exception: {user}: Authentication failed: password is incorrect, or "
                                  "there is no user with such name. (AUTHENTICATION_FAILED)", 516)

    async def _query(self, request: web.Request) -> str:
        cap = self.settings.limits.max_query_bytes
        if request.content_length is not None and request.content_length > cap:
            raise _too_large(request.content_length, cap)
        body = bytearray()
        async for piece in request.content.iter_chunked(READ_BODY_BYTES):
            body += piece
            if len(body) > cap:
                raise _too_large(len(body), cap)
        parts = [part for part in (request.query.get("query", ""), body.decode("utf-8", "replace")) if part]
        sql = "\n".join(parts)
        if len(sql.encode()) > cap:
            raise _too_large(len(sql.encode()), cap)
        if not sql.strip():
            raise ClickHouseError("Empty query", 62)
        return sql

    def _settings(self, url: Mapping[str, str]) -> dict[str, str]:
        """The client's settings that apply, the store's limits over them.

        Raises:
            ClickHouseError: 164 for a setting a read-only server does not change.
        """
        chosen = {"enable_http_compression": "1"}  # clients compress when the server says it does
        for name, value in url.items():
            if name.startswith("param_") or name in PROTOCOL:
                continue
            if DENIED.search(name) or not (name in ALLOWED_SETTINGS or name.startswith(ALLOWED_PREFIXES)):
                raise ClickHouseError(f"Code: 164. DB::Exception: Cannot modify '{name}' setting in readonly mode: "
                                      f"{READ_ONLY}. (READONLY)", READONLY_CODE)
            chosen[name] = value
        limits = self.settings.limits
        for name, most in (("max_execution_time", limits.max_execution_time), ("max_result_rows", limits.max_result_rows),
                           ("max_result_bytes", limits.max_result_bytes)):
            if most:
                asked = _number(chosen.get(name))
                chosen[name] = _plain(most if asked is None or asked <= 0 else min(asked, most))
        return chosen

    async def _stream(self, request: web.Request, answer: Answer, query_id: str) -> web.StreamResponse:
        """Headers once the first bytes (or the end) are there; a gone client cancels the query."""
        started = time.monotonic()
        chunks = answer.chunks()
        watch = asyncio.get_running_loop().create_task(_watch(request, answer))
        response: web.StreamResponse | None = None
        try:
            try:
                first = await anext(chunks, b"")
            except StoreError as exc:
                return ClickHouseError.of(exc).response(query_id)
            response = web.StreamResponse(headers=self._headers(answer, query_id, started))
            if answer.request.compression:
                response.headers["Content-Encoding"] = answer.request.compression
            await response.prepare(request)
            if first:
                await response.write(first)
            try:
                async for chunk in chunks:
                    await response.write(chunk)
            except StoreError as exc:  # after the headers: ClickHouse's way is the error in the body, then cut
                await response.write(f"\nCode: {exc.code}. DB::Exception: {exc.message}\n".encode())
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write_eof()
            return response
        except (ConnectionError, asyncio.CancelledError):
            answer.cancel()
            raise
        finally:
            watch.cancel()
            await chunks.aclose()
            answer.cancel()

    def _headers(self, answer: Answer, query_id: str, started: float) -> dict[str, str]:
        summary = {"read_rows": "0", "read_bytes": "0", "written_rows": "0", "written_bytes": "0",
                   "total_rows_to_read": "0", "result_rows": "0", "result_bytes": "0",
                   "elapsed_ns": str(int((time.monotonic() - started) * 1e9))}
        return {"Content-Type": _content_type(answer.format), "X-ClickHouse-Format": answer.format,
                "X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self.timezone,
                "X-ClickHouse-Server-Display-Name": SERVER_NAME,
                "X-ClickHouse-Summary": "{" + ",".join(f'"{k}":"{v}"' for k, v in summary.items()) + "}",
                "Keep-Alive": "timeout=10"}


async def _watch(request: web.Request, answer: Answer) -> None:
    """Cancel ``answer`` once its client has gone (it may be computing, writing nothing)."""
    while True:
        await asyncio.sleep(CHECK_CLIENT_S)
        transport = request.transport
        if transport is None or transport.is_closing():
            answer.cancel()
            return


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="Ok.\n")


def _credentials(request: web.Request) -> tuple[str, str]:
    """ClickHouse's three ways, in its order: X-ClickHouse-User/Key, basic auth, URL parameters."""
    headers = request.headers
    if "X-ClickHouse-User" in headers or "X-ClickHouse-Key" in headers:
        return headers.get("X-ClickHouse-User", "default"), headers.get("X-ClickHouse-Key", "")
    auth = headers.get("Authorization", "")
    if auth.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ClickHouseError("Code: 516. DB::Exception: Authorization header is not valid basic auth. "
                                  "(AUTHENTICATION_FAILED)", 516) from None
        return user or "default", password
    return request.query.get("user", "default"), request.query.get("password", "")


def _params(url: Mapping[str, str]) -> dict[str, str]:
    return {name[len("param_"):]: value for name, value in url.items() if name.startswith("param_")}


def _compression(request: web.Request) -> str | None:
    """ClickHouse compresses when the client accepts it and did not turn it off."""
    if request.query.get("enable_http_compression", "1") in ("0", "false"):
        return None
    accepted = [part.split(";")[0].strip().lower() for part in request.headers.get("Accept-Encoding", "").split(",")]
    return next((name for name in accepted if name in COMPRESSIONS), None)


def _content_type(fmt: str) -> str:
    for prefix, value in _CONTENT_TYPES:
        if fmt.startswith(prefix):
            return value
    return "application/octet-stream"


def _too_large(size: int, cap: int) -> ClickHouseError:
    return ClickHouseError(f"Code: 393. DB::Exception: the query is {size} bytes, over this server's limit of {cap} "
                           "(STORE_HTTP_MAX_QUERY_BYTES): send a shorter query, with values as param_<name>. "
                           "(QUERY_IS_TOO_LARGE)", 393)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _plain(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@contextlib.asynccontextmanager
async def serving(interface: Interface) -> AsyncIterator[web.AppRunner]:
    """The interface listening on its host and port until the block ends.

    Raises:
        ConfigError: the port is taken, or the host needs a password (naming the setting).
    """
    settings = interface.settings
    settings.check()
    runner = web.AppRunner(interface.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"the store's ClickHouse interface cannot listen on {settings.host}:{settings.port} "
                          f"({exc.strerror}): another program has it; set STORE_HTTP_PORT to another port, or 0 "
                          "to turn the interface off") from None
    try:
        yield runner
    finally:
        await runner.cleanup()


def url_of(settings: Settings) -> str:
    return f"http://{settings.host}:{settings.port}/"


__all__ = ["ALLOWED_SETTINGS", "PROTOCOL", "ClickHouseError", "Interface", "Limits", "Settings", "serving", "url_of"]
