"""Where the SQL runs: chDB in this process (the default) or a ClickHouse server.

Both take the same SQL and answer in ClickHouse's own JSON format, so a query gives
the same rows either way. Every call blocks: the store runs them in threads. The
engines are imported on first use, so ``import band.store`` needs neither.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from ..errors import BandError
from . import readonly as _readonly
from .schema import quote

# ClickHouse error codes that mean "this data does not fit", not "the server is unwell":
# such a batch is split to find the rows at fault instead of being retried forever.
DATA_ERRORS = frozenset({6, 25, 26, 27, 32, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 349, 441, 442, 675, 676, 1001})
_DATA_TEXT = ("Cannot parse", "while reading the value of key", "(at row ")
READONLY = {"readonly": 1}  # reads only, and a query cannot change any setting (its SETTINGS clause is refused)
READONLY_CODE = 164  # ClickHouse's READONLY; the parse guard's refusals carry it too
_CODE = re.compile(r"Code:\s*(\d+)")


class StoreError(BandError):
    """ClickHouse refused a statement; ``code`` is ClickHouse's error code (0 if none)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def is_data_error(self) -> bool:
        return self.code in DATA_ERRORS or any(part in self.message for part in _DATA_TEXT)

    @classmethod
    def wrap(cls, exc: BaseException) -> StoreError:
        text = str(exc).strip()
        found = _CODE.search(text)
        return cls(_tidy(text), int(found.group(1)) if found else 0)


class Unavailable(StoreError):
    """The server cannot be reached (or the data directory cannot be written): retry later."""


def _tidy(text: str) -> str:
    """ClickHouse's message without the stack trace and version noise."""
    text = text.split("\nStack trace")[0]
    return re.sub(r"\s+\(version [^)]*\)", "", text).strip()


class Result(Protocol):
    columns: list[dict[str, str]]
    rows: list[dict[str, Any]]


class Backend(Protocol):
    def command(self, sql: str) -> None: ...
    def select(self, sql: str, params: Mapping[str, Any] | None = None, readonly: bool = False) -> dict[str, Any]: ...
    def insert(self, database: str, table: str, body: bytes, fmt: str = "JSONEachRow",
               columns: Sequence[str] = ()) -> None: ...
    def close(self) -> None: ...


def parse_json(raw: str | bytes) -> dict[str, Any]:
    """ClickHouse's JSON output → ``{"columns": [...], "rows": [...]}``; a statement
    with no result (``INSERT ... SELECT``) gives no columns and no rows."""
    if not raw or not raw.strip():
        return {"columns": [], "rows": []}
    answer = json.loads(raw)
    return {"columns": [{"name": c["name"], "type": c["type"]} for c in answer.get("meta", [])], "rows": answer.get("data", [])}


# one statement on the reading session: (sql, params, "JSON" or "TSV") -> the answer's bytes
Run = Callable[[str, Mapping[str, Any] | None, str], bytes]


def check_read(run: Run, sql: str, params: Mapping[str, Any] | None) -> str:
    """The parse guard of a read-only query (:mod:`.readonly`), with ``run`` on the reading
    session: ClickHouse parses ``sql`` (one statement, else a refusal; a syntax error as
    ClickHouse words it), prints its tree, and the tree must be a read. Returns the
    statement as ClickHouse formats it on one line.

    Raises:
        StoreError: code :data:`READONLY_CODE` for a statement that is not a read; the
            parse's own error (a syntax error, a missing parameter) otherwise.
    """
    try:
        statement = str(parse_json(run(_readonly.one_statement(sql), None, "JSON"))["rows"][0]["statement"])
    except StoreError as exc:
        if _readonly.MULTI_STATEMENTS in exc.message:
            raise StoreError(_readonly.ONE_STATEMENT, READONLY_CODE) from None
        raise StoreError(_IN_SCOPE.sub("", exc.message), exc.code) from None
    try:
        # TSV: one line a row; its escapes (\\, \t) sit inside names and literals, where no rule looks
        ast = run(_readonly.explain(sql), params, "TSV").decode(errors="replace")
    except StoreError as exc:
        if exc.code == READONLY_CODE:  # the session refused the statement's SETTINGS while parsing
            raise StoreError(f"{_readonly.SETTINGS} ({exc.message})", READONLY_CODE) from None
        raise
    try:
        _readonly.check(ast, statement)
    except _readonly.Refused as exc:
        raise StoreError(str(exc), READONLY_CODE) from None
    return statement


def wrap_run(session: Any) -> Run:
    """A :data:`Run` on a chDB session, ClickHouse's errors as :class:`StoreError`."""

    def run(sql: str, params: Mapping[str, Any] | None, fmt: str) -> bytes:
        try:
            answer: bytes = session.query(sql, fmt, params=dict(params) if params else None).bytes()
        except Exception as exc:  # noqa: BLE001 - whatever chDB raises becomes a StoreError
            raise StoreError.wrap(exc) from None
        return answer

    return run


# ClickHouse names the query it was parsing in; that is ours (one_statement), not the user's
_IN_SCOPE = re.compile(r"[.:\s]*In scope SELECT formatQuerySingleLine\(.*\) AS statement\.", re.S)


class ChdbBackend:
    """chDB on a data directory; one session writes, a ``readonly=1`` one answers queries."""

    def __init__(self, path: Path) -> None:
        try:
            from chdb.session import Session
        except ImportError:  # pragma: no cover - depends on the install
            raise StoreError("the embedded store needs chDB: pip install 'band[store]'") from None
        path.mkdir(parents=True, exist_ok=True)
        self.path = path.resolve()
        self._lock = threading.Lock()  # one statement at a time on the writing session
        try:
            self._session = Session(str(self.path))  # type: ignore[no-untyped-call]
            self._reader = Session(f"{self.path}?readonly=1")  # type: ignore[no-untyped-call]
        except Exception as exc:  # noqa: BLE001 - whatever chDB raises opening a directory becomes Unavailable
            raise Unavailable(f"cannot open the store's data directory {self.path}: {exc}") from None

    def _run(self, session: Any, sql: str, fmt: str = "CSV", params: Mapping[str, Any] | None = None) -> Any:
        try:
            return session.query(sql, fmt, params=dict(params) if params else None)
        except Exception as exc:  # noqa: BLE001 - whatever chDB raises becomes a StoreError
            raise StoreError.wrap(exc) from None

    def command(self, sql: str) -> None:
        with self._lock:
            self._run(self._session, sql)

    def select(self, sql: str, params: Mapping[str, Any] | None = None, readonly: bool = False) -> dict[str, Any]:
        """``readonly``: on the ``readonly=1`` session, after :func:`check_read`."""
        if readonly:
            check_read(self._read, sql, params)
            return parse_json(self._read(sql, params, "JSON"))
        with self._lock:
            return parse_json(self._run(self._session, sql, "JSON", params).bytes())

    def _read(self, sql: str, params: Mapping[str, Any] | None, fmt: str) -> bytes:
        answer: bytes = self._run(self._reader, sql, fmt, params).bytes()
        return answer

    def insert(self, database: str, table: str, body: bytes, fmt: str = "JSONEachRow",
               columns: Sequence[str] = ()) -> None:
        listed = f" ({', '.join(map(quote, columns))})" if columns else ""
        sql = f"INSERT INTO {quote(database)}.{quote(table)}{listed} FORMAT {fmt}\n" + body.decode()
        with self._lock:
            self._run(self._session, sql)

    def close(self) -> None:
        for session in (self._reader, self._session):
            try:
                session.close()  # type: ignore[no-untyped-call]
            except Exception:  # noqa: BLE001 - best-effort close: must never raise
                pass


class ServerBackend:
    """A ClickHouse server over HTTP(S) with clickhouse-connect (``CLICKHOUSE_URL``)."""

    def __init__(self, url: str) -> None:
        try:
            import clickhouse_connect  # noqa: F401 - only to say what to install when it is missing
        except ImportError:  # pragma: no cover - depends on the install
            raise StoreError("a ClickHouse server needs clickhouse-connect: pip install 'band[store]'") from None
        self._errors = _server_errors()
        self._url = url
        self._client = self._connect()
        self._lock = threading.Lock()  # clickhouse-connect clients are not shared across threads

    def _connect(self, **options: Any) -> Any:
        import clickhouse_connect

        try:
            return clickhouse_connect.get_client(dsn=self._url, autogenerate_session_id=False, **options)
        except Exception as exc:  # noqa: BLE001 - whatever clickhouse-connect raises becomes Unavailable
            raise Unavailable(f"cannot reach ClickHouse at {_redact(self._url)}: {exc}") from None

    def error_of(self, exc: BaseException) -> StoreError:
        """What clickhouse-connect (or the connection under it) raised, as a :class:`StoreError`:
        ClickHouse's refusal keeps its code; anything else means the server is out of reach."""
        operational, database = self._errors
        if isinstance(exc, database) and not isinstance(exc, operational):
            return StoreError.wrap(exc)
        return Unavailable(_tidy(str(exc)))

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self._mapped(self._lock, fn, *args, **kwargs)

    def _mapped(self, lock: AbstractContextManager[Any], fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            with lock:
                return fn(*args, **kwargs)
        except (*self._errors, OSError) as exc:
            raise self.error_of(exc) from None

    def command(self, sql: str) -> None:
        self._call(self._client.command, sql)

    def select(self, sql: str, params: Mapping[str, Any] | None = None, readonly: bool = False) -> dict[str, Any]:
        """``readonly``: with ``readonly=1`` in the request (set beside the store's own
        settings, which it then keeps), after :func:`check_read`."""
        run = self._run_on(self._client, _READING if readonly else _WRITING, self._lock)
        if readonly:
            check_read(run, sql, params)
        return parse_json(run(sql, params, "JSON"))

    def _run_on(self, client: Any, settings: Mapping[str, Any], lock: AbstractContextManager[Any]) -> Run:
        """A :data:`Run` on ``client`` with ``settings`` in each request, each under ``lock``."""

        def run(text: str, values: Mapping[str, Any] | None, fmt: str) -> bytes:
            # no FORMAT for TSV: clickhouse-connect appends it to the text, where EXPLAIN gives it
            # to the statement explained; a server answers TabSeparated without one
            answer: bytes = self._mapped(lock, client.raw_query, text, parameters=dict(values or {}), settings=dict(settings),
                                         fmt=None if fmt == "TSV" else fmt)
            return answer

        return run

    def reader(self, database: str) -> tuple[Any, Run]:
        """A client of its own for one read of any size, and a :data:`Run` on it: ``readonly=1``
        and ``database`` by default on every request it makes (set on the client, not per
        request, so clickhouse-connect streams its answer). A stream holds its client until it
        ends; the store's own client stays free for the writer meanwhile.

        Raises:
            Unavailable: the server cannot be reached.
        """
        client = self._connect(database=database, settings=_READING)
        return client, self._run_on(client, {}, contextlib.nullcontext())

    def insert(self, database: str, table: str, body: bytes, fmt: str = "JSONEachRow",
               columns: Sequence[str] = ()) -> None:
        self._call(self._client.raw_insert, f"{quote(database)}.{quote(table)}", column_names=list(columns) or None,
                   insert_block=body, fmt=fmt)

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - best-effort close: must never raise
            pass


_WRITING = {"output_format_json_quote_64bit_integers": 0}  # 64-bit integers as JSON numbers, as chDB writes them
_READING = {**_WRITING, **READONLY}  # readonly=1 last: nothing after it may change a setting


def _server_errors() -> tuple[type[BaseException], type[BaseException]]:
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    return OperationalError, DatabaseError


def _redact(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


__all__ = [
    "DATA_ERRORS",
    "READONLY",
    "READONLY_CODE",
    "Backend",
    "ChdbBackend",
    "Result",
    "Run",
    "ServerBackend",
    "StoreError",
    "Unavailable",
    "check_read",
    "parse_json",
    "wrap_run",
]
