"""The generator: a seed, a number of visitors and days in; the events a site would get out.

Every event is the message the store receives after the edge: ``key``, ``service``
(``track``), ``name``, ``channel``, ``projectId``, ``uid``, ``td`` (``ip``, ``ua``, ``ref``,
``host``), ``data`` (the web SDK's payload: ``page``, ``sess``, ``browser``, ``user``,
``lib``, ``scroll``, ``perf``, custom props under ``data.data``), ``id`` and ``time`` (ms).

The model, in short (docs/tutorials/README.md has the whole of it): a visitor arrives on a
day from a traffic source (search, social, referral, direct, paid campaigns with UTM marks,
an e-mail campaign), lands on a page that suits the source, views pages, scrolls, is
active, sometimes submits the lead form, sometimes buys (one ``purchase`` with
``data.revenue``, at most once per visitor), and may come back on later days, often direct.
Some people use two devices: they arrive on a phone from a campaign and log in, then come
back on a laptop, log in with the same user id and buy there (``cross_device``): counted by
cookie they are two visitors and the laptop's direct visit gets the sale; counted by person
(the identity graph joins both uids through the user id) the phone's campaign opened the path.
Only ``random.Random(seed)`` is used: the same arguments give the same events.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

CONVERSION = "purchase"  # the conversion event's name; revenue in data.data.revenue
HOST = "shop.example.com"
_ID_SHIFT = 22  # band.ids' layout: milliseconds << 22 | node << 12 | sequence
_NODE = 7


@dataclass(frozen=True)
class Source:
    """Where a session comes from, as the SDK classifies it (``sess.type``) and marks it."""

    kind: str  # sess.type: campaign, organic, social, referral, direct
    weight: float  # share of first visits
    ref: str = ""  # the referrer URL
    engine: str = ""  # sess.engine for search
    marks: tuple[tuple[str, str], ...] = ()  # UTM marks and click ids on the landing URL
    landings: tuple[str, ...] = ("/",)
    buy_rate: float = 0.04  # chance a session of this source ends in a purchase


SOURCES: tuple[Source, ...] = (
    Source("organic", 22, "https://www.google.com/", "google", landings=("/", "/blog/how-to-choose", "/blog/size-guide"), buy_rate=0.05),
    Source("organic", 10, "https://yandex.ru/search/?text=shop", "yandex", landings=("/", "/blog/size-guide"), buy_rate=0.05),
    Source("social", 9, "https://www.facebook.com/", landings=("/blog/how-to-choose", "/"), buy_rate=0.02),
    Source("social", 6, "https://vk.com/feed", landings=("/blog/size-guide",), buy_rate=0.02),
    Source("referral", 7, "https://habr.com/ru/articles/123/", landings=("/blog/how-to-choose",), buy_rate=0.04),
    Source("direct", 14, landings=("/",), buy_rate=0.07),
    Source("campaign", 12, "https://www.google.com/",
           marks=(("utm_source", "google"), ("utm_medium", "cpc"), ("utm_campaign", "winter_sale"), ("utm_term", "warm boots"), ("gclid", "g")),
           landings=("/pricing", "/product/boots"), buy_rate=0.08),
    Source("campaign", 6, "https://www.google.com/",
           marks=(("utm_source", "google"), ("utm_medium", "cpc"), ("utm_campaign", "brand"), ("utm_term", "example shop"), ("gclid", "g")),
           landings=("/",), buy_rate=0.10),
    Source("campaign", 8, "https://yandex.ru/",
           marks=(("utm_source", "yandex"), ("utm_medium", "cpc"), ("utm_campaign", "winter_sale"), ("utm_content", "banner_a"), ("yclid", "y")),
           landings=("/product/boots", "/pricing"), buy_rate=0.07),
    Source("campaign", 4, "https://www.facebook.com/",
           marks=(("utm_source", "facebook"), ("utm_medium", "paid_social"), ("utm_campaign", "retargeting"), ("fbclid", "f")),
           landings=("/product/scarf",), buy_rate=0.06),
    Source("campaign", 2, "",
           marks=(("utm_source", "newsletter"), ("utm_medium", "email"), ("utm_campaign", "december_digest")),
           landings=("/product/scarf", "/pricing"), buy_rate=0.09),
)
DIRECT = next(s for s in SOURCES if s.kind == "direct")

PAGES: dict[str, str] = {
    "/": "Example Shop",
    "/pricing": "Prices and delivery",
    "/product/boots": "Warm boots",
    "/product/scarf": "Wool scarf",
    "/blog/how-to-choose": "How to choose winter boots",
    "/blog/size-guide": "Size guide",
    "/contact": "Contact us",
    "/checkout": "Checkout",
}
NEXT_PAGES = ("/", "/pricing", "/product/boots", "/product/scarf", "/blog/size-guide", "/contact")
PRICES = (19.0, 49.0, 99.0, 149.0, 249.0)

# Bots mixed in by ``generate(..., bots=N)``: (the reason the edge gives, user agent, referrer).
# Their events carry that reason in ``bot``, as the edge flags them; a person's never do.
BOTS: tuple[tuple[str, str, str], ...] = (
    ("crawler", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", ""),
    ("crawler", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", ""),
    ("headless", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", ""),
    ("no_ua", "", ""),
    ("spam_ref", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", "https://semalt.com/"),
)

DEVICES: tuple[tuple[str, int, int, float], ...] = (  # user agent, screen width, height, share
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", 1440, 900, 0.3),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", 1920, 1080, 0.3),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", 390, 844, 0.25),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", 412, 915, 0.15),
)


PHONE, LAPTOP = 2, 0  # DEVICES: the cross-device people's phone and laptop
CAMPAIGNS = tuple(s for s in SOURCES if s.kind == "campaign")
HOUR_MS = 3_600_000


@dataclass
class _Visitor:
    uid: str
    ua: str
    ip: str
    width: int
    height: int
    tz: str
    tzo: int
    bought: bool = False
    user_id: str = ""


def generate(seed: int, visitors: int, days: int, start: dt.date = dt.date(2026, 11, 1), bots: int = 0,
             cross_device: int | None = None) -> list[dict[str, Any]]:
    """The events of ``visitors`` visitors over ``days`` days from ``start`` (UTC), ordered by time.

    ``cross_device``: that many more people on two devices (default one per 20 visitors): a
    phone's campaign visit with a login, then a laptop's direct visit with a login under the
    same user id and a purchase. ``bots``: that many bot visitors mixed in (crawlers, headless
    browsers, no user agent, referrer spam; :data:`BOTS`), their events flagged in ``bot`` as
    the edge flags them. Both draw from random generators of their own: the single-device
    visitors' events are the same whatever their numbers.
    """
    cross_device = visitors // 20 if cross_device is None else cross_device
    if visitors < 0 or days < 1 or bots < 0 or cross_device < 0:
        raise ValueError("visitors, cross_device and bots must be >= 0 and days >= 1")
    rng = random.Random(seed)
    day0 = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC).timestamp() * 1000)
    events: list[dict[str, Any]] = []
    _people(rng, visitors, days, day0, events)
    _cross_device(random.Random(seed * 7907 + 3), cross_device, days, day0, events)
    _bots(random.Random(seed * 7919 + 1), bots, days, day0, events)
    events.sort(key=lambda e: (e["time"], e["uid"], e["data"]["sess"]["eventNum"]))
    _assign_ids(events)
    return events


def _people(rng: random.Random, visitors: int, days: int, day0: int, events: list[dict[str, Any]]) -> None:
    for n in range(visitors):
        first_day = rng.randrange(days)
        first_ms = day0 + first_day * 86_400_000 + _daytime_ms(rng)
        visitor = _new_visitor(rng, n, first_ms)
        session_ms, session_num = first_ms, 1
        while True:
            source = _pick_source(rng, returning=session_num > 1)
            _session(rng, visitor, source, session_num, session_ms, events)
            if rng.random() > 0.4:  # comes back with chance 0.4, each time
                break
            gap_days = rng.choice((0, 1, 1, 2, 3, 5))
            day = (session_ms - day0) // 86_400_000 + gap_days
            if day >= days:
                break
            session_ms = max(day0 + day * 86_400_000 + _daytime_ms(rng), events[-1]["time"] + 1_800_000)
            if (session_ms - day0) // 86_400_000 >= days:
                break
            session_num += 1


def _cross_device(rng: random.Random, people: int, days: int, day0: int, events: list[dict[str, Any]]) -> None:
    """People on a phone, then a laptop: one user id, two uids, the purchase on the second.

    The phone's visit comes from a paid campaign and logs in (``identify``) without buying; the
    laptop's visit, hours to three days later, is direct, logs in with the same user id and buys.
    Both visits end inside the generated days."""
    end = day0 + days * 86_400_000 - 4 * HOUR_MS  # the laptop's visit starts by then, so it ends inside
    for n in range(people):
        phone_ms = day0 + rng.randrange(max(1, days * 24 - 12)) * HOUR_MS + rng.randrange(HOUR_MS)
        phone = _new_visitor(rng, 0x800 + (n & 0x3FF), phone_ms, device=PHONE)
        user_id = f"user-{phone.uid[-6:]}"
        mine: list[dict[str, Any]] = []
        _session(rng, phone, rng.choice(CAMPAIGNS), 1, phone_ms, mine, login=user_id, buy=False)
        laptop_ms = max(min(mine[-1]["time"] + rng.randrange(HOUR_MS, 72 * HOUR_MS), end), mine[-1]["time"] + 1)
        laptop = _new_visitor(rng, 0xC00 + (n & 0x3FF), laptop_ms, device=LAPTOP)
        _session(rng, laptop, DIRECT, 1, laptop_ms, mine, login=user_id, buy=True)
        events += mine


def _bots(rng: random.Random, bots: int, days: int, day0: int, events: list[dict[str, Any]]) -> None:
    """Bot visitors: each crawls like a visitor (sessions, pages, even a checkout) on one day."""
    for n in range(bots):
        reason, ua, ref = rng.choice(BOTS)
        start_ms = day0 + rng.randrange(days) * 86_400_000 + _daytime_ms(rng)
        visitor = _new_visitor(rng, 0xFFF - (n & 0x7FF), start_ms)
        visitor.ua = ua
        source = Source("referral", 0, ref, landings=("/", "/pricing", "/product/boots"), buy_rate=0.3) if ref else DIRECT
        first = len(events)
        for num in range(1, 1 + rng.randrange(1, 4)):
            _session(rng, visitor, source, num, max(start_ms, events[-1]["time"] + 1 if len(events) > first else start_ms), events)
        for event in events[first:]:
            event["bot"] = reason


def _daytime_ms(rng: random.Random) -> int:
    hour = min(23, max(0, int(rng.gauss(14, 4))))
    return (hour * 3600 + rng.randrange(3600)) * 1000


def _new_visitor(rng: random.Random, n: int, first_ms: int, device: int | None = None) -> _Visitor:
    ua, width, height, _ = rng.choices(DEVICES, weights=[d[3] for d in DEVICES])[0] if device is None else DEVICES[device]
    uid = (first_ms << _ID_SHIFT) | (rng.getrandbits(10) << 12) | (n & 0xFFF)
    tz, tzo = rng.choice((("Europe/Moscow", -180), ("Europe/Berlin", -60), ("Europe/London", 0)))
    ip = f"{rng.choice((5, 31, 46, 77, 95, 178, 185))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return _Visitor(str(uid), ua, ip, width, height, tz, tzo)


def _pick_source(rng: random.Random, returning: bool) -> Source:
    if returning and rng.random() < 0.45:
        return DIRECT
    return rng.choices(SOURCES, weights=[s.weight for s in SOURCES])[0]


class _Session:
    """Builds one session's events in order; numbers pages and events as the SDK does."""

    def __init__(self, visitor: _Visitor, source: Source, num: int, start_ms: int, landing: str, out: list[dict[str, Any]]) -> None:
        self.visitor, self.source, self.num, self.start_ms, self.landing = visitor, source, num, start_ms, landing
        self.out = out
        self.now = start_ms
        self.page_num = 0
        self.event_num = 0
        self.url = ""
        self.prev_url = source.ref
        self.seen: set[str] = set()
        self.marks = {k: (v if k not in ("gclid", "yclid", "fbclid") else f"{v}{start_ms % 1_000_000:06d}{visitor.uid[-4:]}") for k, v in source.marks}

    def open_page(self, path: str) -> None:
        self.prev_url = self.url or self.source.ref
        self.page_num += 1
        query = "&".join(f"{k}={v.replace(' ', '+')}" for k, v in self.marks.items()) if self.page_num == 1 and self.marks else ""
        self.url = f"https://{HOST}{path}" + (f"?{query}" if query else "")
        self.path = path
        self.seen.add(path)

    def emit(self, name: str, extra: dict[str, Any] | None = None, custom: dict[str, Any] | None = None) -> None:
        v, source = self.visitor, self.source
        page: dict[str, Any] = {"url": self.url, "ref": self.prev_url, "title": PAGES[self.path], "domain": HOST, "scheme": "https"}
        if self.page_num == 1 and self.marks:
            page["query"] = dict(self.marks)
        sess: dict[str, Any] = {
            "type": source.kind, "engine": source.engine, "num": self.num, "hasMarks": 1 if self.marks else 0,
            "pageNum": self.page_num, "eventNum": self.event_num, "marks": dict(self.marks), "start": self.start_ms,
            "refhost": source.ref.split("/")[2] if source.ref else "",
        }
        user: dict[str, Any] = {"tz": v.tz, "tzo": v.tzo, "ts": self.now}
        if v.user_id:
            user["id"] = v.user_id
        payload: dict[str, Any] = {
            "service": "track", "name": name, "uid": v.uid, "page": page, "sess": sess,
            "browser": {"w": v.width, "h": v.height, "tw": v.width, "th": v.height, "aw": v.width, "ah": v.height - 40, "sopr": 2, "soa": 0,
                        "sot": "portrait-primary" if v.width < 800 else "landscape-primary", "if1": 0, "if2": 0},
            "user": user, "lib": {"id": "web-sdk", "v": 3.12, "sv": 1},
        }
        if extra:
            payload.update(extra)
        if custom:
            payload["data"] = custom
        self.out.append({
            "key": f"in.gen.track.{name}", "service": "track", "name": name, "channel": "http", "projectId": 0,
            "uid": v.uid, "td": {"ip": v.ip, "ua": v.ua, "ref": self.url, "host": HOST},
            "data": payload, "id": "", "time": self.now,
        })
        self.event_num += 1

    def wait(self, rng: random.Random, low: float, high: float) -> None:
        self.now += int(rng.uniform(low, high) * 1000)


def _session(rng: random.Random, visitor: _Visitor, source: Source, num: int, start_ms: int, out: list[dict[str, Any]],
             login: str = "", buy: bool | None = None) -> None:
    """One session's events into ``out``. ``login``: a user id the visitor logs in with on the
    landing page (``identify``); ``buy``: True or False decides the purchase, None leaves it to chance."""
    s = _Session(visitor, source, num, start_ms, rng.choice(source.landings), out)
    engaged = rng.random()  # how interested this session is: more pages, scrolling, activity
    pages = 1 + int(rng.expovariate(1.0 / (1 + 3 * engaged)))
    path = s.landing
    for page_index in range(min(pages, 12)):
        s.open_page(path)
        if page_index == 0:
            s.emit("session")
            s.now += rng.randrange(5, 60)  # the SDK sends the page view a few ms after the session
        s.emit("page")
        if login and page_index == 0:
            s.wait(rng, 2, 15)
            visitor.user_id = login
            s.emit("identify", custom={"user_id": login})
        s.wait(rng, 0.3, 2.5)
        s.emit("page_loaded", {"perf": {"dl": rng.randrange(50, 900), "dc": rng.randrange(100, 1500), "rqs": rng.randrange(5, 80)}})
        doc_h = rng.choice((1800, 2600, 4200))
        seen = 0
        for _ in range(rng.randrange(0, 2 + int(6 * engaged))):
            s.wait(rng, 2, 20)
            seen = min(doc_h - visitor.height, seen + rng.randrange(200, 900))
            s.emit("scroll", {"scroll": {"dh": doc_h, "ch": visitor.height, "cs": seen, "ms": seen, "to": s.now - s.start_ms}})
        for _ in range(rng.randrange(0, 1 + int(5 * engaged))):
            s.wait(rng, 5, 30)
            s.emit("activity", custom={"active_s": rng.randrange(5, 30)})
        if path in ("/pricing", "/contact") and rng.random() < 0.25 + 0.3 * engaged:
            s.wait(rng, 5, 40)
            s.emit("field_focus", custom={"form": "lead", "field": "email"})
            s.wait(rng, 5, 40)
            s.emit("form_submit", custom={"form": "lead"})
            if not visitor.user_id:
                visitor.user_id = f"lead-{visitor.uid[-8:]}"
                s.emit("identify", custom={"user_id": visitor.user_id})
        s.wait(rng, 5, 90)
        s.emit("page_unload")
        path = rng.choice(NEXT_PAGES)
    # half of those who open the checkout pay; a buyer looks at a product first
    if buy is None:
        buy = not visitor.bought and rng.random() < 2 * source.buy_rate * (0.5 + engaged) * (1 + 0.3 * (num - 1))
    if buy:
        if not any(p.startswith("/product/") for p in s.seen):
            s.open_page(rng.choice(("/product/boots", "/product/scarf")))
            s.emit("page")
            s.wait(rng, 10, 90)
            s.emit("page_unload")
        s.open_page("/checkout")
        s.emit("page")
        s.wait(rng, 20, 120)
        if login or rng.random() < 0.5:  # a logged-in buyer pays
            price = rng.choice(PRICES)
            s.emit(CONVERSION, custom={"revenue": price, "currency": "EUR", "order_id": f"o-{visitor.uid[-10:]}"})
            visitor.bought = True
        else:
            s.emit("page_unload")


def _assign_ids(events: list[dict[str, Any]]) -> None:
    """Time-ordered ids as band.ids makes them, counted within each millisecond."""
    last_ms, seq = -1, 0
    for event in events:
        ms = event["time"]
        seq = seq + 1 if ms == last_ms else 0
        last_ms = ms
        event["id"] = str((ms << _ID_SHIFT) | (_NODE << 12) | (seq & 0xFFF))


__all__ = [
    "BOTS",
    "CAMPAIGNS",
    "CONVERSION",
    "DEVICES",
    "DIRECT",
    "HOST",
    "NEXT_PAGES",
    "PAGES",
    "PRICES",
    "SOURCES",
    "Source",
    "generate",
]
