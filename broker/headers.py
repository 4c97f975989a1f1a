"""Front's answer headers: security headers, the uid cookie and its ``Domain``, the site's host.

The cookie's ``Domain`` is, as Rockstat front chose it: an explicit ``cookie_domain``;
else the ``X-Forwarded-Host`` a trusted proxy passed (the host the visitor asked for);
else the ``DOMAIN`` knob by front's auto rule (strip ``www.``, then drop the first label
when more than two remain: ``www.shop.example.com`` → ``.example.com``); else none
(the browser scopes it to the edge's own host).
"""

from __future__ import annotations

from collections.abc import Mapping

from .config import EdgeConfig
from .consent import CLEAR, DENIED, EXPIRE, GRANT, GRANTED

SECURITY = {"X-Frame-Options": "SAMEORIGIN", "X-Content-Type-Options": "nosniff"}


def auto_domain(domain: str) -> str:
    """Front's rule: ``www.shop.example.com`` → ``example.com``, ``example.com`` → itself."""
    domain = domain.strip().strip(".").lower()
    if domain.startswith("www."):
        domain = domain[4:]
    parts = [p for p in domain.split(".") if p]
    return ".".join(parts[1:] if len(parts) > 2 else parts)


def forwarded_host(headers: Mapping[str, str]) -> str:
    """The first ``X-Forwarded-Host`` without its port ("" when absent or not a host name)."""
    value = headers.get("X-Forwarded-Host", "").split(",", 1)[0].strip()
    if value.startswith("["):  # [::1]:443: an address, never a cookie domain
        return ""
    host = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    ok = host and all(c.isalnum() or c in "-." for c in host)
    return host.lower() if ok else ""


class UidCookie:
    """``Set-Cookie`` values for the uid; the constant parts are built once."""

    def __init__(self, config: EdgeConfig) -> None:
        attrs = f"; Path=/; Max-Age={config.cookie_max_age_s}; HttpOnly"
        rest = "; Secure; SameSite=None" if config.cookie_secure else ""
        attrs += rest
        self._prefix = f"{config.cookie_name}="
        self._consent = f"{config.consent_cookie_name}="
        self._expired = f"; Path=/; Max-Age=0; HttpOnly{rest}"
        self._attrs = attrs
        self._fixed = config.cookie_domain
        auto = auto_domain(config.domain) if config.domain else ""
        self._auto = f"; Domain=.{auto}" if auto else ""

    def header(self, uid: str, proxied_host: str = "") -> str:
        """The cookie for ``uid``; ``proxied_host``: the trusted proxy's ``X-Forwarded-Host``."""
        if self._fixed:
            return f"{self._prefix}{uid}{self._attrs}; Domain={self._fixed}"
        if proxied_host:
            return f"{self._prefix}{uid}{self._attrs}; Domain={proxied_host}"
        return self._prefix + uid + self._attrs + self._auto

    def _domain(self, proxied_host: str) -> str:
        if self._fixed:
            return f"; Domain={self._fixed}"
        return f"; Domain={proxied_host}" if proxied_host else self._auto

    def consented(self, action: str, uid: str, proxied_host: str = "") -> list[str]:
        """The cookies of a consent action (:mod:`broker.consent`): a grant sets the uid and
        the consent cookie; the page's denial expires the uid cookie and records itself; the
        browser's refusal expires both."""
        domain = self._domain(proxied_host)
        if action == GRANT:
            return [self.header(uid, proxied_host), f"{self._consent}{GRANTED}{self._attrs}{domain}"]
        if action == CLEAR:
            return [f"{self._prefix}{self._expired}{domain}", f"{self._consent}{DENIED}{self._attrs}{domain}"]
        if action == EXPIRE:
            return [f"{self._prefix}{self._expired}{domain}", f"{self._consent}{self._expired}{domain}"]
        return []


__all__ = ["SECURITY", "UidCookie", "auto_domain", "forwarded_host"]
