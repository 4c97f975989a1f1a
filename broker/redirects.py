"""The redirect policy: which locations the edge may send, which hosts ``/redir`` may go to."""

from __future__ import annotations

from urllib.parse import urlsplit


def unsafe_location(location: str) -> str | None:
    """Why a redirect ``location`` must not be sent, or ``None`` when it is safe.

    Absolute http(s) URLs and same-site paths (``/x``, not ``//host``) only; any
    control character (CR/LF header injection) is refused.
    """
    if not location or any(ord(c) < 0x20 or ord(c) == 0x7F for c in location):
        return "redirect location is empty or has control characters"
    if "\\" in location:  # browsers read "\" as "/": https://evil\@good/ goes to evil
        return "redirect location has a backslash"
    if location.startswith("/") and not location.startswith("//") and not location.startswith("/\\"):
        return None
    try:
        parts = urlsplit(location)
    except ValueError:
        return "redirect location is not a URL"
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "redirect location must be an http(s) URL"
    return None


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``allowed`` empty = any host; else the host or a subdomain of an entry."""
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    return any(host == a or host.endswith("." + a) for a in (x.lower().lstrip(".") for x in allowed))


def redirect_problem(to: object, allowed: tuple[str, ...]) -> str | None:
    """Why ``/redir?to=`` must not go to ``to`` (absolute http(s), allowed host), or ``None``."""
    if not isinstance(to, str) or to.startswith("/") or unsafe_location(to) is not None:
        return "redir needs ?to= with an http(s) URL"
    if not host_allowed(urlsplit(to).hostname or "", allowed):
        return "redir: that host is not allowed"
    return None


__all__ = ["host_allowed", "redirect_problem", "unsafe_location"]
