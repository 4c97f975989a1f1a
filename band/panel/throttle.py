"""Failed logins, rate-limited per client address, in bounded memory.

Each address has a token bucket: ``burst`` failed logins at once, then one more every
``refill_s``. An address whose bucket is empty is answered 429 with ``Retry-After``
before its credentials are even checked, so guessing on cannot tell a right answer
from a wrong one. Only the ``max_addresses`` most recently failing addresses are kept
(least recently used dropped first): a flood of addresses costs a bounded dict, and an
address dropped starts again with a full bucket, which is never more than ``burst``
tries. IPv6 addresses count per /64, the block one host usually holds.

Behind a reverse proxy every client shares the proxy's address, and so one bucket: a
guesser then also delays the others' logins, never the sessions already open.

A few lines of the standard library, where a rate-limit package would be one more
dependency of every install.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

BURST = 10  # failed logins an address may make at once
REFILL_S = 6.0  # then one more every this many seconds (ten a minute)
MAX_ADDRESSES = 4096


@dataclass
class _Bucket:
    tokens: float
    at: float


class LoginThrottle:
    """``retry_after(address)`` before a credential check, ``failed(address)`` after a wrong one."""

    def __init__(self, burst: int = BURST, refill_s: float = REFILL_S, max_addresses: int = MAX_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.refill_s = refill_s
        self.max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def retry_after(self, address: str | None) -> int:
        """Whole seconds until ``address`` may try again; 0: it may now."""
        bucket = self._refilled(_key(address))
        if bucket is None or bucket.tokens >= 1:
            return 0
        return max(1, math.ceil((1 - bucket.tokens) * self.refill_s))

    def failed(self, address: str | None) -> None:
        """One wrong credential from ``address``: one token less."""
        key = _key(address)
        bucket = self._refilled(key) or _Bucket(float(self.burst), self._clock())
        bucket.tokens = max(0.0, bucket.tokens - 1)
        self._buckets[key] = bucket
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)

    def _refilled(self, key: str) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            now = self._clock()
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) / self.refill_s)
            bucket.at = now
        return bucket


def _key(address: str | None) -> str:
    """The address as counted: IPv4 whole (also when IPv4-mapped), IPv6 by its /64."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or ""  # a Unix socket's peer, or no address at all
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ip.ipv4_mapped) if ip.ipv4_mapped else str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


__all__ = ["BURST", "MAX_ADDRESSES", "REFILL_S", "LoginThrottle"]
