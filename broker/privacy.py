"""The visitor's address as the edge's IP policy keeps it, and the daily key behind the hashes.

Enrichers inside the pipeline (geo services, bot classification) read the full address;
the built-in ``fpid`` hashes what the policy keeps (an unkeyed hash of the whole address
would give the address back to anyone trying the 2**32 IPv4 addresses); :meth:`IpPolicy.apply` runs once, just before the message is published (and before
a dropped bot's hit goes to its handler), so the raw address never reaches the stream, the
store, a listener or a handler. Policies:

- ``keep``: the address as it came;
- ``truncate`` (the default): IPv4 to its /24 (``203.0.113.0``), IPv6 to its /48;
- ``hash``: a keyed hash of the address (16 hex digits) under a key that changes every UTC
  day and is never stored: the same address gives the same value within a day only;
- ``drop``: ``""``.

:class:`DailyKey` derives each day's key from a secret: the configured ``privacy_secret``
(edges that must agree — several behind one load balancer — share it) or, when none is set,
random bytes drawn when the edge starts (a restart starts new hashes; two edges never
agree). The key lives in memory only. Its clock is the one test hook: pass your own.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from band.errors import ConfigError

KEEP, TRUNCATE, HASH, DROP = "keep", "truncate", "hash", "drop"
POLICIES = (KEEP, TRUNCATE, HASH, DROP)
_V6_KEEP = (1 << 128) - (1 << 80)  # the /48 mask

Clock = Callable[[], float]  # seconds since the epoch, UTC (time.time)


def check_policy(where: str, policy: Any) -> str:
    """``policy`` when it names one.

    Raises:
        ConfigError: naming ``where`` and the policies there are.
    """
    if policy not in POLICIES:
        raise ConfigError(f"{where} must be one of {', '.join(POLICIES)}, got {policy!r}")
    return str(policy)


class DailyKey:
    """Today's key (UTC), derived from a secret and the date; the secret stays in memory."""

    def __init__(self, secret: str = "", clock: Clock = time.time) -> None:
        self._secret = hashlib.blake2b(secret.encode(), digest_size=32).digest() if secret else os.urandom(32)
        self.clock = clock
        self._day = -1
        self._key = b""

    def today(self) -> bytes:
        """The key of the clock's UTC day (one division per call; derived once a day)."""
        day = int(self.clock() // 86400)
        if day != self._day:
            date = datetime.date.fromordinal(datetime.date(1970, 1, 1).toordinal() + day).isoformat()
            self._key = hashlib.blake2b(date.encode(), key=self._secret, digest_size=32).digest()
            self._day = day
        return self._key

    def digest(self, purpose: bytes, *parts: str) -> bytes:
        """8 bytes of a keyed hash of ``parts`` under today's key, one domain per ``purpose``."""
        return hashlib.blake2b("\0".join(parts).encode(), key=self.today(), person=purpose, digest_size=8).digest()


def truncate(ip: str) -> str:
    """IPv4 to its /24, IPv6 to its /48 (an IPv4-mapped one to its IPv4's /24); anything else ``""``."""
    if ip.count(".") == 3 and ":" not in ip:  # the edge's addresses are already normalised
        return ip[: ip.rfind(".")] + ".0"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's IPv4 client: its /24, not the /48 of ::ffff:0:0
    if isinstance(address, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(int(address) & 0xFFFFFF00))
    return str(ipaddress.IPv6Address(int(address) & _V6_KEEP))


class IpPolicy:
    """The edge's policy, per project where one is named (``ip_policies``)."""

    def __init__(self, policy: str, per_project: Mapping[str, str], key: DailyKey) -> None:
        self.policy = check_policy("ip_policy", policy)
        self.per_project: dict[int, str] = {}
        for project, named in per_project.items():
            try:
                number = int(project)
            except (TypeError, ValueError):
                raise ConfigError(f"ip_policies: {project!r} is not a projectId (an integer)") from None
            self.per_project[number] = check_policy(f"ip_policies[{project!r}]", named)
        self._key = key

    def of(self, project: Any) -> str:
        """The policy of a message's ``projectId``."""
        if self.per_project:
            return self.per_project.get(project, self.policy) if isinstance(project, int) else self.policy
        return self.policy

    def value(self, policy: str, ip: str) -> str:
        """What ``policy`` keeps of ``ip``."""
        if policy == TRUNCATE:
            return truncate(ip)
        if policy == HASH:
            return self._key.digest(b"band-ip", ip).hex()
        if policy == DROP:
            return ""
        return ip

    def kept(self, message: dict[str, Any]) -> str:
        """What the message's policy keeps of its ``td.ip`` (``""`` without one)."""
        td = message.get("td")
        ip = td.get("ip") if isinstance(td, dict) else None
        return self.value(self.of(message.get("projectId")), str(ip)) if ip else ""

    def apply(self, message: dict[str, Any]) -> None:
        """The message's ``td.ip`` as its policy keeps it. ``td`` is replaced, never changed
        in place: a socket's frames share one."""
        td = message.get("td")
        if not isinstance(td, dict) or not td.get("ip"):
            return
        policy = self.of(message.get("projectId"))
        if policy != KEEP:
            message["td"] = {**td, "ip": self.value(policy, str(td["ip"]))}


__all__ = ["DROP", "HASH", "KEEP", "POLICIES", "TRUNCATE", "Clock", "DailyKey", "IpPolicy", "check_policy", "truncate"]
