"""Bots and spam at the edge (broker/bots.py): every hit classified, flagged by default,
dropped or kept by config, counted; enrichers that decline bots are not asked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.fakes import BROWSER, FakeService, enrichers_seen, enriches, returns, routed, running_edge, unique

from band import App, wire
from band.errors import ConfigError
from band.testing import serve
from broker.bots import Bots, Burst, referrer_host
from broker.config import EdgeConfig
from broker.discovery import Instance, build_snapshot

CHROME = BROWSER
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"
UID = "6462464730849083392"

# (what is sent, the reason it must arrive with); "" = a person
CRAWL: list[tuple[dict[str, str], str]] = [
    ({"User-Agent": CHROME}, ""),
    ({"User-Agent": GOOGLEBOT}, "crawler"),
    ({"User-Agent": "curl/8.4.0"}, "crawler"),
    ({"User-Agent": HEADLESS}, "headless"),
    ({"User-Agent": ""}, "no_ua"),
    ({"User-Agent": CHROME, "Referer": "https://www.semalt.com/crawler.php?u=site"}, "spam_ref"),
    ({"User-Agent": CHROME, "Referer": "http://x.darodar.com/"}, "spam_ref"),  # a subdomain of a listed one
    ({"User-Agent": CHROME, "Referer": "https://www.google.com/search?q=semalt.com"}, ""),  # only the host counts
]


async def published(nc: Any, key_prefix: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` events the edge published under ``key_prefix`` (the stream, read
    from its start: call it once the hits were answered, so the stream exists)."""
    sub = await nc.jetstream().subscribe(f"{key_prefix}.>", ordered_consumer=True)
    try:
        return [json.loads((await sub.next_msg(timeout=10)).data) for _ in range(count)]
    finally:
        await sub.unsubscribe()


def metric(text: str, reason: str, action: str) -> float:
    series = f'band_edge_bots_total{{action="{action}",reason="{reason}"}} '
    return next((float(line[len(series):]) for line in text.splitlines() if line.startswith(series)), 0.0)


# --- the classifier on its own -------------------------------------------------------
def test_each_reason_and_a_person() -> None:
    bots = Bots(spam_domains=frozenset({"semalt.com", "darodar.com"}))
    for headers, reason in CRAWL:
        td = {"ua": headers["User-Agent"], "ref": headers.get("Referer", "")}
        assert bots.classify({"td": td, "uid": UID}) == reason, headers
    assert bots.classify({"td": {"ref": ""}, "uid": UID}) == "no_ua"  # no header at all
    sdk = {"td": {"ua": CHROME, "ref": "https://shop.test/"}, "uid": UID, "data": {"page": {"ref": "https://semalt.com/x"}}}
    assert bots.classify(sdk) == "spam_ref"  # the page's referrer, as the web SDK reports it
    later = {**sdk, "data": {"page": {"ref": "https://shop.test/"}, "sess": {"refhost": "www.semalt.com"}}}
    assert bots.classify(later) == "spam_ref"  # a later page of a session the spam referred
    assert referrer_host("https://user@WWW.Semalt.com:8443/x?y#z") == "semalt.com"


def test_user_agents_are_classified_once_in_a_bounded_cache() -> None:
    bots = Bots(ua_cache=4)
    for n in range(10):
        bots.classify({"td": {"ua": f"{CHROME} n{n}"}, "uid": UID})
        bots.classify({"td": {"ua": f"{CHROME} n{n}"}, "uid": UID})
    info = bots._ua_reason.cache_info()
    assert info.currsize == 4 and info.hits == 10 and info.misses == 10


def test_burst_is_a_sliding_minute_per_uid_in_bounded_memory() -> None:
    burst = Burst(limit=5, slots=3)
    assert [burst.hit("a", 0.0) for _ in range(7)] == [False] * 5 + [True, True]
    assert not burst.hit("a", 125.0)  # two windows later: the past is forgotten
    for n in range(10):
        burst.hit(f"u{n}", 126.0)
    assert len(burst) == 3  # only the most recent uids are kept
    slow = Burst(limit=5)
    assert not any(slow.hit("b", t * 15.0) for t in range(40))  # 4 a minute for ten minutes: a person


def test_bad_bot_config_is_refused_naming_what_to_write() -> None:
    with pytest.raises(ConfigError, match="reasons are no_ua, headless, crawler, spam_ref, burst"):
        EdgeConfig(bots={"crawlers": "drop"})
    with pytest.raises(ConfigError, match="actions are flag, drop, keep"):
        EdgeConfig(bots={"crawler": "delete"})
    with pytest.raises(ConfigError, match="spam_referrers_file"):
        EdgeConfig(spam_referrers_file="/nonexistent/spam.txt")


# --- through a real edge and a real nats-server ----------------------------------------
async def test_a_crawl_of_each_reason_arrives_flagged_and_a_person_does_not(nc: Any, nats_url: str, tmp_path: Any) -> None:
    svc = unique("bots")
    spam = tmp_path / "spam.txt"
    spam.write_text("# mine\ndarodar.com\n")  # the shipped list has semalt.com; the file adds to it
    async with running_edge(nats_url, burst_hits=5, spam_referrers_file=str(spam)) as (client, _):
        for n, (headers, _reason) in enumerate(CRAWL):
            skip = ["User-Agent"] if n == 4 else []  # one no_ua hit with no header at all
            resp = await client.get(f"/{svc}/page?n={n}", headers={} if skip else headers, skip_auto_headers=skip)
            assert resp.status == 200
        for n in range(8):  # one uid, 8 hits: past 5 a minute is a burst
            assert (await client.get(f"/{svc}/burst?uid={UID}&n={n}", headers={"User-Agent": CHROME})).status == 200
        arrived = await published(nc, f"in.gen.{svc}", len(CRAWL) + 8)
        metrics = await (await client.get("/metrics")).text()
    pages = {int(m["data"]["n"]): m.get(wire.BOT_FIELD, "") for m in arrived if m["name"] == "page"}
    assert pages == {n: reason for n, (_, reason) in enumerate(CRAWL)}
    bursts = [m.get(wire.BOT_FIELD, "") for m in sorted((m for m in arrived if m["name"] == "burst"), key=lambda m: int(m["data"]["n"]))]
    assert bursts == [""] * 5 + ["burst"] * 3
    assert wire.BOT_FIELD not in next(m for m in arrived if m["data"].get("n") == "0")  # a person's message is as before
    assert metric(metrics, "crawler", "flag") == 2 and metric(metrics, "headless", "flag") == 1
    assert metric(metrics, "no_ua", "flag") == 1 and metric(metrics, "spam_ref", "flag") == 2 and metric(metrics, "burst", "flag") == 3


async def test_drop_answers_as_usual_publishes_nothing_and_counts(nc: Any, nats_url: str) -> None:
    svc = unique("drop")
    async with (
        FakeService(nc, svc).handler("page", returns({"type__": "data", "statusCode": 200, "data": {"hello": 1}})) as service,
        running_edge(nats_url, bots={"crawler": "drop"}) as (client, edge),
    ):
        await routed(edge, f"in.gen.{svc}.page")
        dropped = await client.get(f"/{svc}/page?n=1", headers={"User-Agent": GOOGLEBOT})
        assert dropped.status == 200 and await dropped.json() == {"hello": 1}  # the handler's answer, as usual
        person = await client.get(f"/{svc}/page?n=2", headers={"User-Agent": CHROME})
        assert person.status == 200 and await person.json() == {"hello": 1}
        first, = await published(nc, f"in.gen.{svc}", 1)  # had the crawler's been published, it would come first
        metrics = await (await client.get("/metrics")).text()
    assert first["data"]["n"] == "2" and wire.BOT_FIELD not in first
    assert len(service.calls) == 2
    assert metric(metrics, "crawler", "drop") == 1 and metric(metrics, "crawler", "flag") == 0


async def test_keep_stores_unflagged_and_counts(nc: Any, nats_url: str) -> None:
    svc = unique("keep")
    async with running_edge(nats_url, bots={"headless": "keep"}) as (client, _):
        assert (await client.get(f"/{svc}/page?n=1", headers={"User-Agent": HEADLESS})).status == 200
        kept, = await published(nc, f"in.gen.{svc}", 1)
        metrics = await (await client.get("/metrics")).text()
    assert kept["data"]["n"] == "1" and wire.BOT_FIELD not in kept
    assert metric(metrics, "headless", "keep") == 1


async def test_detection_off_classifies_nothing(nc: Any, nats_url: str) -> None:
    svc = unique("off")
    async with running_edge(nats_url, bot_detection=False) as (client, _):
        assert (await client.get(f"/{svc}/page", headers={"User-Agent": GOOGLEBOT})).status == 200
        assert wire.BOT_FIELD not in (await published(nc, f"in.gen.{svc}", 1))[0]


async def test_an_enricher_that_declines_bots_is_not_asked_for_a_bot(nc: Any, nats_url: str) -> None:
    svc, picky, eager = unique("enr"), unique("picky"), unique("eager")
    key = f"in.gen.{svc}.page"
    app, asked = App(picky), []

    @app.expose.enricher(props={"ua": "td.ua"}, keys=[key], bots=False)
    async def geo(ua: str) -> dict[str, Any]:
        asked.append(ua)
        return {"geo": 1}

    async with (
        serve(app, nats_url),
        FakeService(nc, eager).enricher(enriches({"all": 1}), keys=[key]) as takes,
        running_edge(nats_url) as (client, edge),
    ):
        await enrichers_seen(edge, key, {picky, eager})
        assert (await client.get(f"/{svc}/page?n=1", headers={"User-Agent": GOOGLEBOT})).status == 200
        assert (await client.get(f"/{svc}/page?n=2", headers={"User-Agent": CHROME})).status == 200
        bot, person = await published(nc, f"in.gen.{svc}", 2)
        assert edge.discovery.snapshot.enrich_plan(key, bot=True)[0] == {eager}
    assert bot[wire.BOT_FIELD] == "crawler" and bot["data"][eager] == {"all": 1} and picky not in bot["data"]
    assert person["data"][picky] == {"geo": 1} and person["data"][eager] == {"all": 1}
    assert asked == [CHROME] and len(takes.calls) == 2
    assert takes.calls[0][wire.BOT_FIELD] == "crawler" and wire.BOT_FIELD not in takes.calls[1]


def test_enrichers_that_all_decline_bots_get_no_request_for_one() -> None:
    no_bots = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=["in.gen"], props={"ua": "td.ua"}, bots=False)
    legacy = wire.endpoint_metadata(wire.ROLE_ENRICHER, keys=["in.gen.shop"], props={"ip": "td.ip"})  # no `bots`: every hit
    snap = build_snapshot([Instance("ua", "i", [{"name": "e", "subject": "a", "metadata": no_bots}], 1),
                           Instance("geo", "i", [{"name": "e", "subject": "b", "metadata": legacy}], 1)], 200)
    assert snap.enrich_plan("in.gen.track.page", bot=True) == (frozenset(), ())
    assert snap.enrich_plan("in.gen.track.page") == (frozenset({"ua"}), ("td.ua",))
    assert snap.enrich_plan("in.gen.shop.buy", bot=True) == (frozenset({"geo"}), ("td.ip",))
