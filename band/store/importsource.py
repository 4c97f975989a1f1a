"""Where ``band store import`` reads from: JSON lines (a file or stdin), or a table of a
ClickHouse server streamed with clickhouse-connect (a Rockstat chwriter table, or a
store's own). Each yields ``(line number, the line's bytes)`` one line at a time, so a
file of any size is read in constant memory; the lines are parsed where they are stored
(:mod:`.imports`), except the first few, which say at once whether this is JSON lines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, NamedTuple

from .imports import parse
from .schema import quote

SNIFF_LINES = 5  # none of the first five lines a JSON object: the input is not JSON lines at all
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?\Z")


class SourceError(Exception):
    """The input cannot be imported at all (not JSON lines, ClickHouse unreachable): one line saying what to do."""


class Line(NamedTuple):
    number: int
    raw: bytes


def json_lines(stream: BinaryIO, name: str) -> Iterator[Line]:
    """Numbered JSON lines of ``stream`` (blank ones skipped).

    Raises:
        SourceError: none of the first :data:`SNIFF_LINES` lines is a JSON object.
    """
    return sniffed(_numbered(stream), name)


def _numbered(chunks: Iterable[bytes]) -> Iterator[Line]:
    for number, raw in enumerate(chunks, 1):
        raw = raw.strip()
        if raw:
            yield Line(number, raw)


def sniffed(lines: Iterator[Line], name: str) -> Iterator[Line]:
    """``lines``, once one of the first few is a JSON object; else a :class:`SourceError` at once."""
    head: list[Line] = []
    first: tuple[Any, str] = (None, "")
    for line in lines:
        head.append(line)
        value, reason = parse(line.raw)
        if len(head) == 1:
            first = value, reason
        if isinstance(value, dict):
            break
        if len(head) >= SNIFF_LINES:
            raise SourceError(_not_json_lines(name, head[0].number, *first))
    else:
        if head:
            raise SourceError(_not_json_lines(name, head[0].number, *first))
    yield from head
    yield from lines


def _not_json_lines(name: str, number: int, value: Any, reason: str) -> str:
    if isinstance(value, list):
        hint = "it is one JSON array: write one element per line (jq -c '.[]')"
    else:
        hint = f"line {number}: {reason or 'a JSON ' + type(value).__name__ + ', not an object'}"
    return (f"{name} is not JSON lines ({hint}); expected one event or store row per line as a JSON object, "
            "e.g. from band demo --jsonl or band sql --format jsonl")


def clickhouse_rows(url: str, table: str) -> Iterator[Line]:
    """Every row of ``table`` (``db.table``) on the server at ``url``, streamed as
    ``JSONEachRow`` (a clickhouse-connect DSN: ``http://user:pass@host:8123``, or
    ``chdb://path`` for a chDB directory); the line number is the row's position.

    Raises:
        SourceError: no client, an unreachable server, a missing table: one line.
    """
    if not _TABLE.match(table):
        raise SourceError(f"--table must be a table name such as stats.events, got {table!r}")
    try:
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import ClickHouseError
    except ImportError:  # pragma: no cover - depends on the install
        raise SourceError("reading from ClickHouse needs clickhouse-connect: pip install 'band[store]'") from None
    for noisy in ("clickhouse_connect", "urllib3"):  # their retries and warnings: the one line below says it
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    shown = re.sub(r"//[^@/]*@", "//***@", url)
    try:
        client = clickhouse_connect.get_client(dsn=url)
    except Exception as exc:  # noqa: BLE001 - whatever clickhouse-connect raises becomes a SourceError
        raise SourceError(f"cannot reach ClickHouse at {shown}: {_first_line(exc)}") from None
    name = ".".join(quote(part) for part in table.split("."))
    query = f"SELECT * FROM {name}"
    try:
        stream = client.raw_stream(query, fmt="JSONEachRow", settings={"output_format_json_quote_64bit_integers": 0})
    except (ClickHouseError, OSError) as exc:
        client.close()
        raise SourceError(f"cannot read {table} from ClickHouse at {shown}: {_first_line(exc)}") from None
    return _closing(client, _numbered(_split(stream)))


def _closing(client: Any, lines: Iterator[Line]) -> Iterator[Line]:
    try:
        yield from lines
    finally:
        client.close()


def _split(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of a byte stream cut anywhere."""
    rest = b""
    for chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


_OS_ERROR = re.compile(r"\[Errno -?\d+\] ([^\"')]+)")


def _first_line(exc: BaseException) -> str:
    """The reason in a few words: the socket's own error when there is one (urllib3's
    message around it is a paragraph), else the first line."""
    text = str(exc).strip() or type(exc).__name__
    found = _OS_ERROR.search(text)
    return found.group(1).strip() if found else text.splitlines()[0][:300]


__all__ = ["Line", "SourceError", "clickhouse_rows", "json_lines", "sniffed"]
