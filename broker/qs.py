"""Query strings and form bodies read the way Rockstat front read them (``qs.parse``).

The web SDK builds its image-transport URLs with ``qs.stringify``
(``data[target][tag]=a&user[ts]=…``), so brackets must come back as nested objects.
Query strings: nested objects to depth 5, arrays (``a[]=1&a[]=2``, ``a=1&a=2``).
Form bodies: depth 2, no arrays (``a[]=x`` is ``{"a": {"0": "x"}}``), as front's
``parseQuery``. The grammar is PyPI ``qs-codec`` (a maintained port of qs), not ours.

Text without brackets (the common hit) takes the standard library's parser: the
same result, a fraction of the cost. Limits: at most ``max_fields`` parameters,
strict UTF-8, and no key nested deeper than ``max_depth`` brackets (a nesting bomb
is a 400 in time linear in its length; deeper than qs's depth but within that
bound, the rest of the key stays a literal key, as qs does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote

from qs_codec import DecodeOptions, Duplicates, decode

from band.errors import BandError

QUERY_DEPTH = 5
FORM_DEPTH = 2


class QsError(BandError, ValueError):
    """The text cannot be read; the message names the problem."""


@dataclass(frozen=True)
class Grammar:
    """How deep objects go, whether ``[]`` makes arrays, and what errors call the text."""

    depth: int
    arrays: bool
    what: str  # "query string": in error messages
    kind: str  # "query": "too many query fields"


QUERY = Grammar(QUERY_DEPTH, arrays=True, what="query string", kind="query")
FORM = Grammar(FORM_DEPTH, arrays=False, what="form body", kind="form")


def _strict(text: str, charset: Any = None, kind: Any = None) -> str:
    """qs's scalar decoding (``+`` is a space), refusing invalid UTF-8 instead of U+FFFD."""
    return unquote(text.replace("+", " ") if "+" in text else text, errors="strict")


@lru_cache(maxsize=16)
def _options(grammar: Grammar) -> DecodeOptions:
    """Built once per grammar (building one costs as much as decoding a key)."""
    return DecodeOptions(
        depth=grammar.depth,
        parse_lists=grammar.arrays,
        parameter_limit=math.inf,  # counted by parse() itself: qs-codec would count empty parts and drop the rest silently
        duplicates=Duplicates.COMBINE,  # a=1&a=2 is ["1", "2"], as qs (arrays or not)
        decoder=_strict,
    )


def _has_brackets(text: str) -> bool:
    return "[" in text or "%5B" in text or "%5b" in text


def _flat(text: str) -> dict[str, Any] | None:
    """Bracket-free text by the standard parser; ``None`` when repeated keys need qs."""
    pairs = parse_qsl(text, keep_blank_values=True, errors="strict")  # parse() bounded the count
    fields = {k: v for k, v in pairs if k}
    return fields if len(fields) == len(pairs) else None


def _check_depth(text: str, max_depth: int, what: str) -> None:
    for part in text.split("&"):
        key = part.split("=", 1)[0]
        if key.count("[") + key.count("%5B") + key.count("%5b") > max_depth:
            raise QsError(f"{what} has a key nested deeper than {max_depth} levels")


def _nested(text: str, grammar: Grammar) -> dict[str, Any]:
    value: dict[str, Any] = decode(text, _options(grammar))
    return value


def _mixed(text: str, grammar: Grammar) -> dict[str, Any]:
    """Only the bracketed parameters go through qs-codec (it costs ~20 µs a parameter);
    the flat ones join them when no top-level name is shared, else qs-codec reads all."""
    flat_parts: list[str] = []
    nested_parts: list[str] = []
    for part in text.split("&"):
        (nested_parts if _has_brackets(part.split("=", 1)[0]) else flat_parts).append(part)
    flat = _flat("&".join(flat_parts)) if flat_parts else {}
    nested = _nested("&".join(nested_parts), grammar)
    if flat is None or not flat.keys().isdisjoint(nested):
        return _nested(text, grammar)
    flat.update(nested)
    return flat


def parse(text: str, grammar: Grammar, *, max_fields: int, max_depth: int) -> dict[str, Any]:
    """``text`` (no leading ``?``) as qs would read it.

    Raises:
        QsError: more than ``max_fields`` parameters, invalid UTF-8, or a key with
            more than ``max_depth`` brackets.
    """
    if not text:
        return {}
    if text.count("&") >= max_fields:  # cheap bound before any parsing (empty parts count too)
        parts = sum(1 for p in text.split("&") if p)
        if parts > max_fields:
            raise QsError(f"too many {grammar.kind} fields (limit {max_fields})")
    try:
        if not _has_brackets(text):
            fields = _flat(text)
            if fields is not None:
                return fields
            return _nested(text, grammar)
        _check_depth(text, max_depth, grammar.what)
        return _mixed(text, grammar)
    except UnicodeDecodeError:
        raise QsError(f"{grammar.what} is not valid UTF-8") from None
    except QsError:
        raise
    except ValueError as exc:
        raise QsError(f"{grammar.what}: {exc}") from None


__all__ = ["FORM", "FORM_DEPTH", "QUERY", "QUERY_DEPTH", "Grammar", "QsError", "parse"]
