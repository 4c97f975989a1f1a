"""Is this hit a person's? One short word when it is not, decided at the edge for every hit.

Bots and spam are flagged, never silently dropped: the reason goes into the message
(:data:`band.wire.BOT_FIELD`) so the store keeps it in its ``bot`` column and reports can
leave such events out. An operator may choose per reason to ``drop`` (answered as usual,
not published, counted) or ``keep`` (no flag). The decision is cheap and local: no network,
no service call; user agents repeat, so each one is classified once (a bounded LRU), and
a uid's rate is a sliding window kept for a bounded number of uids.

Reasons, in the order they are checked:

- ``no_ua``: no or an empty ``User-Agent``;
- ``headless``: a headless browser's marker (HeadlessChrome, PhantomJS, Puppeteer, ...);
- ``crawler``: a known crawler, bot or HTTP library (the crawler-user-agents list);
- ``spam_ref``: a ``Referer``, or the page's or session's referrer the web SDK reports
  (``data.page.ref``, ``data.sess.refhost``), on a known referrer-spam domain (or a subdomain);
- ``burst``: a uid past ``burst_hits`` hits within the last minute.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

REASONS: Final = ("no_ua", "headless", "crawler", "spam_ref", "burst")
ACTIONS: Final = ("flag", "drop", "keep")
FLAG, DROP, KEEP = ACTIONS

# Headless browsers announce themselves in the user agent unless their driver hides it
# (navigator.webdriver is not sent to servers); these are the markers they leave by default.
_HEADLESS = re.compile(r"Headless|PhantomJS|Puppeteer|Playwright|SlimerJS|Selenium|webdriver", re.IGNORECASE)
BURST_WINDOW_S: Final = 60.0


def _crawler_matcher() -> Callable[[str], bool]:
    """The crawler-user-agents list (imported when an edge starts, not at import)."""
    from crawleruseragents import is_crawler

    matcher: Callable[[str], bool] = is_crawler
    return matcher


def read_domains(lines: Iterable[str]) -> frozenset[str]:
    """Domains, one a line; ``#`` starts a comment; case and a leading ``www.`` ignored."""
    domains = set()
    for line in lines:
        domain = line.split("#", 1)[0].strip().lower().removeprefix("www.")
        if domain:
            domains.add(domain)
    return frozenset(domains)


def shipped_spam_domains() -> frozenset[str]:
    """The referrer-spam list that ships with the edge (``broker/data/spam_referrers.txt``)."""
    text = resources.files("broker").joinpath("data/spam_referrers.txt").read_text("utf-8")
    return read_domains(text.splitlines())


def referrer_host(ref: str) -> str:
    """The host of a ``Referer`` URL, lower case, without ``www.`` ("" when there is none)."""
    start = ref.find("://")
    if start < 0:
        return ""
    host = ref[start + 3:]
    for stop in "/?#":
        cut = host.find(stop)
        if cut >= 0:
            host = host[:cut]
    host = host.rpartition("@")[2].partition(":")[0]
    return host.lower().removeprefix("www.")


class Burst:
    """Hits per uid over the last minute, for at most ``slots`` uids (the least recently
    seen is forgotten first), so memory stays bounded whatever the uids.

    A sliding window estimated from two fixed windows (the previous minute's count, weighted
    by how much of it still overlaps the last minute, plus this minute's): two numbers per uid.
    """

    __slots__ = ("_seen", "limit", "slots", "window")

    def __init__(self, limit: int, slots: int = 100_000, window: float = BURST_WINDOW_S) -> None:
        self.limit = limit
        self.window = window
        self.slots = slots
        self._seen: OrderedDict[str, list[float]] = OrderedDict()  # uid -> [window start, previous, current]

    def hit(self, uid: str, now: float) -> bool:
        """Count one hit of ``uid``; ``True`` when its rate is past the limit."""
        seen = self._seen
        entry = seen.get(uid)
        if entry is None:
            seen[uid] = [now, 0.0, 1.0]
            if len(seen) > self.slots:
                seen.popitem(last=False)
            return False
        seen.move_to_end(uid)
        elapsed = now - entry[0]
        if elapsed >= self.window:
            windows = int(elapsed // self.window)
            entry[1] = entry[2] if windows == 1 else 0.0
            entry[2] = 0.0
            entry[0] += windows * self.window
            elapsed -= windows * self.window
        entry[2] += 1
        return entry[1] * (1 - elapsed / self.window) + entry[2] > self.limit

    def __len__(self) -> int:
        return len(self._seen)


class Bots:
    """The edge's classifier: :meth:`classify` gives a hit's reason ("" for a person) and
    :meth:`action` what to do with it."""

    def __init__(
        self,
        actions: Mapping[str, str] | None = None,
        spam_domains: frozenset[str] = frozenset(),
        burst_hits: int = 0,
        ua_cache: int = 16_384,
        burst_slots: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.actions = {reason: FLAG for reason in REASONS} | dict(actions or {})
        self.spam_domains = spam_domains
        self.burst = Burst(burst_hits, burst_slots) if burst_hits > 0 else None
        self._clock = clock
        crawler = _crawler_matcher()

        def ua_reason(ua: str) -> str:
            if not ua.strip():
                return "no_ua"
            if _HEADLESS.search(ua):
                return "headless"
            return "crawler" if crawler(ua) else ""

        self._ua_reason = lru_cache(maxsize=ua_cache)(ua_reason)

    @classmethod
    def configured(cls, actions: Mapping[str, str], spam_referrers_file: str, burst_hits: int) -> Bots:
        """The classifier the edge's settings ask for (``bots``, ``spam_referrers_file``,
        ``burst_hits``): the shipped spam list plus the file's.

        Raises:
            ConfigError: the file cannot be read (names it).
        """
        domains = shipped_spam_domains()
        if spam_referrers_file:
            domains |= read_spam_file(spam_referrers_file)
        return cls(actions, domains, burst_hits)

    def classify(self, message: Mapping[str, Any]) -> str:
        """The reason ``message`` (a hit's, with ``td`` and ``uid``) is not a person's, or ""."""
        td = message.get("td")
        if not isinstance(td, Mapping):
            td = {}
        ua = td.get("ua")
        reason = self._ua_reason(ua) if isinstance(ua, str) else "no_ua"
        if reason:
            return reason
        if self.spam_domains and (self._spam(td.get("ref")) or self._sdk_spam(message.get("data"))):
            return "spam_ref"
        if self.burst is not None and self.burst.hit(str(message.get("uid")), self._clock()):
            return "burst"
        return ""

    def action(self, reason: str) -> str:
        """``flag``, ``drop`` or ``keep`` for ``reason``."""
        return self.actions[reason]

    def _sdk_spam(self, data: Any) -> bool:
        """The page's referrer as the web SDK reports it (``data.page.ref``, and its
        session's ``data.sess.refhost``): ghost spam puts its domain there, while the
        request's ``Referer`` is the site's own page."""
        if not isinstance(data, Mapping):
            return False
        sess = data.get("sess")
        if isinstance(sess, Mapping) and "refhost" in sess:  # the session's first page.ref, on every event of it
            return self._spam(sess["refhost"], host=True)
        page = data.get("page")
        return isinstance(page, Mapping) and self._spam(page.get("ref"))

    def _spam(self, ref: Any, host: bool = False) -> bool:
        if not ref or not isinstance(ref, str):
            return False
        host_name = ref.lower().removeprefix("www.") if host else referrer_host(ref)
        return self._listed(host_name)

    def _listed(self, host: str) -> bool:
        domains = self.spam_domains
        while host:
            if host in domains:
                return True
            host = host.partition(".")[2]
        return False


def read_spam_file(path: str) -> frozenset[str]:
    """Referrer-spam domains from ``path`` (one a line).

    Raises:
        ConfigError: the file cannot be read.
    """
    from band.errors import ConfigError

    try:
        return read_domains(Path(path).read_text("utf-8").splitlines())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"spam_referrers_file {path!r} cannot be read ({exc}): give a text file with one domain a line") from None


__all__ = ["ACTIONS", "DROP", "FLAG", "KEEP", "REASONS", "Bots", "Burst", "read_domains", "read_spam_file", "referrer_host", "shipped_spam_domains"]
