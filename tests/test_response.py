"""Typed responses: the documented factory and the wire form."""

from __future__ import annotations

import pytest

from band import response
from band.response import PIXEL_GIF, BadResponse, DataResponse, PixelResponse, coerce, from_wire


def test_factory_forms() -> None:
    assert response({"a": 1}) == DataResponse(data={"a": 1})
    assert response.data([1, 2], statusCode=201) == DataResponse(statusCode=201, data=[1, 2])
    assert response.data("text").data == "text" and response.data(5).data == 5
    assert response.pixel() == PixelResponse(data={})
    assert response.redirect("https://x.y/", 301, data={"k": 1}).to_wire() == {
        "type__": "redirect", "statusCode": 301, "data": {"k": 1}, "location": "https://x.y/"}
    assert response.error("Some F*cking error").to_wire() == {
        "type__": "error", "statusCode": 500, "data": {}, "message": "Some F*cking error"}


def test_error_message_defaults_to_status_phrase() -> None:
    assert response.error(statusCode=404).message == "Not Found"
    assert response.error(statusCode=400).message == "Bad Request"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirect_codes(code: int) -> None:
    assert response.redirect("https://a.b/", code).statusCode == code


def test_bad_codes_raise() -> None:
    with pytest.raises(ValueError, match="redirect status"):
        response.redirect("https://a.b/", 200)
    with pytest.raises(ValueError, match="4xx or 5xx"):
        response.error("x", 200)


def test_plain_values_are_data() -> None:
    assert coerce(None) == DataResponse(data={})
    assert coerce({"m": 1}) == DataResponse(data={"m": 1})
    assert coerce([1]) == DataResponse(data=[1]) and coerce("s").data == "s"
    assert coerce(response.pixel()) == PixelResponse()


def test_round_trip_and_garbage() -> None:
    for value in (response({"a": 1}), response.pixel({"x": 2}), response.redirect("https://q/"), response.error("e", 404)):
        assert from_wire(value.to_wire()) == value
    for garbage in (None, 5, [], {"type__": "nope"}, {"type__": "redirect"}, {"type__": "data", "statusCode": "x"},
                    {"type__": "redirect", "location": "https://q", "statusCode": 200}):
        with pytest.raises(BadResponse):
            from_wire(garbage)


def test_pixel_is_a_43_byte_gif() -> None:
    assert len(PIXEL_GIF) == 43 and PIXEL_GIF.startswith(b"GIF89a")
