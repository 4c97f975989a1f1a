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


@pytest.mark.parametrize(("body", "problem"), [(b"[" * 5000, "nested too deeply"), (b"{bad", "not valid JSON"), (b"NaN", "not valid JSON"), (b"\xff", "not valid JSON")])
def test_bad_bodies_are_decode_errors(body: bytes, problem: str) -> None:
    with pytest.raises(wire.DecodeError, match=problem):
        wire.decode(body)
