"""band.wire's JSON (orjson with the standard library behind it): the same JSON as before."""

from __future__ import annotations

import datetime as dt

import pytest

from band import wire


def test_encode_matches_the_standard_encoder() -> None:
    value = {"a": 1, 2: "int key", "s": {3}, "t": (1, 2), "d": dt.date(2026, 12, 1), "u": "ünï", "big": 10**30}
    assert wire.encode(value) == wire._ENCODER.encode(value).encode()


@pytest.mark.parametrize("body", [b'{"n": 123456789012345678901234567890}', b"[-98765432109876543210]", b"12345678901234567890123"])
def test_numbers_past_64_bits_stay_exact(body: bytes) -> None:
    value = wire.decode(body)
    assert wire.encode(value).replace(b" ", b"") == body.replace(b" ", b"")


@pytest.mark.parametrize(
    ("body", "problem"), [(b"[" * 5000, "nested too deeply"), (b"{bad", "not valid JSON"), (b"NaN", "not valid JSON"), (b"\xff", "not valid JSON")]
)
def test_bad_bodies_are_decode_errors(body: bytes, problem: str) -> None:
    with pytest.raises(wire.DecodeError, match=problem):
        wire.decode(body)


@pytest.mark.parametrize("body", [
    b'{"x": "\\ud800", "n": 12345678901234567890123}',  # a big number takes json's road, which reads the escape
    b'{"x": "\xed\xa0\x80", "n": 12345678901234567890123}',  # the escape's bytes: json reads them too
])
def test_lone_surrogates_are_decode_errors(body: bytes) -> None:
    """A lone surrogate decodes in Python's json but encodes nowhere: a service answered
    its caller 500 (the reply could not be encoded) instead of 400."""
    with pytest.raises(wire.DecodeError, match=r"surrogate|not valid JSON"):
        wire.decode(body)
    assert wire.decode(b'{"x": "\\ud83d\\ude00", "n": 12345678901234567890123}')["x"] == "\U0001F600"  # a pair is text


def test_lone_surrogate_names_where() -> None:
    assert wire.lone_surrogate({"data": {"a": ["ok", "x\ud800"]}}) == "lone surrogate \\ud800 at data.a[1]"
    assert wire.lone_surrogate({"k\udcff": 1}) == "lone surrogate \\udcff at k\\udcff"
    assert wire.lone_surrogate({"a": "ünï", "b": [1, None, "\U0001F600"]}) is None
