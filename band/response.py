"""What a handler returns: data, a pixel, a redirect or an error.

Each kind is a small class with a ``type__`` tag and one wire form (``to_wire``);
``response`` is the documented factory: ``response(data)``, ``response.data(...)``,
``response.pixel()``, ``response.redirect(...)``, ``response.error(...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar

from .errors import BandError

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})

# The 43-byte transparent 1x1 GIF every pixel answers with.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def _status_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def _extra(data: Any) -> Any:
    return {} if data is None else data


@dataclass(frozen=True)
class Response:
    """Base of the typed answers; ``data`` is extra data that travels with it."""

    type__: ClassVar[str] = ""
    statusCode: int = 200
    data: Any = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {"type__": self.type__, "statusCode": self.statusCode, "data": self.data}


@dataclass(frozen=True)
class DataResponse(Response):
    """JSON (objects, lists, numbers) or text (strings) with a status code."""

    type__: ClassVar[str] = "data"


@dataclass(frozen=True)
class PixelResponse(Response):
    """A transparent 1x1 GIF."""

    type__: ClassVar[str] = "pixel"


@dataclass(frozen=True)
class RedirectResponse(Response):
    """An HTTP redirect to ``location``."""

    type__: ClassVar[str] = "redirect"
    location: str = ""
    statusCode: int = 302

    def __post_init__(self) -> None:
        if self.statusCode not in REDIRECT_CODES:
            raise ValueError(f"redirect status must be one of {sorted(REDIRECT_CODES)}, got {self.statusCode}")

    def to_wire(self) -> dict[str, Any]:
        return {**super().to_wire(), "location": self.location}


@dataclass(frozen=True)
class ErrorResponse(Response):
    """An error the handler chose to answer with; ``message`` defaults to the status phrase."""

    type__: ClassVar[str] = "error"
    message: str = ""
    statusCode: int = 500

    def __post_init__(self) -> None:
        if not 400 <= self.statusCode <= 599:
            raise ValueError(f"error status must be 4xx or 5xx, got {self.statusCode}")
        if not self.message:
            object.__setattr__(self, "message", _status_phrase(self.statusCode))

    def to_wire(self) -> dict[str, Any]:
        return {**super().to_wire(), "message": self.message}


class ResponseFactory:
    """The documented ``response`` object: callable, with one method per kind."""

    def __call__(self, data: Any = None, statusCode: int = 200) -> DataResponse:
        return self.data(data, statusCode)

    @staticmethod
    def data(data: Any = None, statusCode: int = 200) -> DataResponse:
        return DataResponse(statusCode=statusCode, data=_extra(data))

    @staticmethod
    def pixel(data: Any = None) -> PixelResponse:
        return PixelResponse(data=_extra(data))

    @staticmethod
    def redirect(location: str, statusCode: int = 302, data: Any = None) -> RedirectResponse:
        return RedirectResponse(location=location, statusCode=statusCode, data=_extra(data))

    @staticmethod
    def error(message: str = "", statusCode: int = 500, data: Any = None) -> ErrorResponse:
        return ErrorResponse(message=message, statusCode=statusCode, data=_extra(data))


response = ResponseFactory()


def coerce(result: Any) -> Response:
    """A handler's return value as a typed response: plain values are data, None is ``{}``."""
    if isinstance(result, Response):
        return result
    return DataResponse(data=_extra(result))


def to_wire(result: Any) -> dict[str, Any]:
    """The wire form of a handler's return value (``coerce(result).to_wire()``, faster)."""
    if isinstance(result, Response):
        return result.to_wire()
    # null stays null on the wire: an RPC caller gets None back; the edge answers {}
    return {"type__": "data", "statusCode": 200, "data": result}


_KINDS: dict[str, type[Response]] = {
    cls.type__: cls for cls in (DataResponse, PixelResponse, RedirectResponse, ErrorResponse)
}


class BadResponse(BandError, ValueError):
    """A reply that is not a typed response (the edge answers 502)."""


def from_wire(value: Any) -> Response:
    """Rebuild a typed response from its JSON form.

    Raises:
        BadResponse: not an object with a known ``type__`` and valid fields.
    """
    if not isinstance(value, Mapping):
        raise BadResponse(f"reply is not a typed response object: {type(value).__name__}")
    kind = value.get("type__")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BadResponse(f"reply has unknown type__ {kind!r}")
    status = value.get("statusCode", 200 if cls is not ErrorResponse else 500)
    if isinstance(status, bool) or not isinstance(status, int):
        raise BadResponse(f"reply statusCode must be an integer, got {status!r}")
    data = _extra(value.get("data"))
    try:
        if cls is RedirectResponse:
            location = value.get("location")
            if not isinstance(location, str):
                raise BadResponse("redirect reply has no string location")
            return RedirectResponse(location=location, statusCode=status, data=data)
        if cls is ErrorResponse:
            message = value.get("message") or ""
            return ErrorResponse(message=str(message), statusCode=status, data=data)
        if cls is DataResponse and not 100 <= status <= 599:
            raise BadResponse(f"reply statusCode out of range: {status}")
        return cls(statusCode=status, data=data)
    except ValueError as exc:
        if isinstance(exc, BadResponse):
            raise
        raise BadResponse(str(exc)) from None


__all__ = [
    "PIXEL_GIF",
    "BadResponse",
    "DataResponse",
    "ErrorResponse",
    "PixelResponse",
    "RedirectResponse",
    "Response",
    "ResponseFactory",
    "coerce",
    "from_wire",
    "response",
    "to_wire",
]
