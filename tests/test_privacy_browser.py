"""The consent banner of docs/privacy.md in headless Chromium, against an edge with
`consent: required`: cookieless until Accept, one uid across the grant, Decline clears the
uid cookie, Global Privacy Control keeps the banner away and the cookie unset."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.browser import needs_chromium, snippet
from support.fakes import edge_config
from support.poll import wait_for
from support.sdk import arrivals, site

from band import wire
from broker.app import make_app

pytestmark = [pytest.mark.slow, needs_chromium]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "privacy.md"



def banner() -> str:
    """The banner exactly as docs/privacy.md shows it."""
    text = DOCS.read_text(encoding="utf-8").split("### A consent banner", 1)[1]
    found = re.search(r"```html\n(.*?)```", text, re.S)
    assert found
    return found[1]




@pytest.fixture
async def edge_origin(nats_url: str) -> AsyncIterator[str]:
    app = make_app(edge_config(nats_url, cookie_secure=False, consent="required"))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield str(client.make_url("")).rstrip("/")


def page_html(edge_origin: str) -> str:
    loader = snippet(edge_origin)
    return f"<!doctype html><html><head><title>Shop</title>{loader}</head><body>{banner()}<p>shop</p></body></html>"


async def cookie_names(ctx: Any, names: set[str]) -> bool:
    return {c["name"] for c in await ctx.cookies()} == names


async def band_keys(page: Any) -> list[str]:
    keys = await page.evaluate("Object.keys(window.localStorage).filter(function (k) { return k.indexOf('band:') === 0; })")
    return sorted(keys)


async def test_the_banner_grants_and_denies(browser: Any, nc: Any, edge_origin: str) -> None:
    # the page and the edge on one host (two ports are one site): the edge's cookie is first-party
    async with site({"/shop": page_html(edge_origin)}) as origin, arrivals(nc, "in.gen.track.>") as seen:
        ctx = await browser.new_context()
        page = await ctx.new_page()
        await page.goto(origin + "/shop")
        before = list(await seen.take(2))  # session + page, cookieless
        await page.wait_for_selector("#consent-banner", state="visible")
        assert await page.evaluate("rstat('consent')") == "unknown"
        assert await ctx.cookies() == [] and await band_keys(page) == []  # nothing on the device
        cookieless = before[0]["uid"]
        assert {e["uid"] for e in before} == {cookieless} and {e[wire.CONSENT_FIELD] for e in before} == {0}

        await page.click("#consent-accept")
        await wait_for(lambda: len(seen.named("consent")) == 1, timeout=10, what="the grant")
        grant = seen.named("consent")[0]
        assert grant["uid"] == cookieless and grant[wire.CONSENT_FIELD] == 1
        await wait_for(lambda: cookie_names(ctx, {"uid", "uid_consent"}), timeout=10, what="the grant's cookies")
        jar = {c["name"]: c["value"] for c in await ctx.cookies()}
        assert jar == {"uid": cookieless, "uid_consent": "granted"}, jar
        assert await page.is_hidden("#consent-banner") and await page.evaluate("rstat('consent')") == "granted"

        await page.reload()  # the next page: /lib.js hands the cookie's uid to the tracker
        await wait_for(lambda: len(seen.named("page")) >= 2, timeout=10, what="the page after the grant")
        after = seen.named("page")[1]
        assert after["uid"] == cookieless and after[wire.CONSENT_FIELD] == 1 and after["data"]["uid"] == cookieless
        assert await page.is_hidden("#consent-banner") and "band:uid" in await band_keys(page)

        await page.evaluate("rstat('consent', 'denied')")
        await wait_for(lambda: len(seen.named("consent")) == 2, timeout=10, what="the denial")
        assert seen.named("consent")[1][wire.CONSENT_FIELD] == 0
        await wait_for(lambda: cookie_names(ctx, {"uid_consent"}), timeout=10, what="the uid cookie cleared")
        assert [c["value"] for c in await ctx.cookies()] == ["denied"]  # the refusal, recorded
        assert await band_keys(page) == ["band:consent"]
        await ctx.close()


async def test_global_privacy_control_keeps_the_banner_away(browser: Any, nc: Any, edge_origin: str) -> None:
    async with site({"/shop": page_html(edge_origin)}) as origin, arrivals(nc, "in.gen.track.>") as seen:
        ctx = await browser.new_context(extra_http_headers={"Sec-GPC": "1"})
        await ctx.add_init_script("Object.defineProperty(navigator, 'globalPrivacyControl', {get: function () { return true; }});")
        page = await ctx.new_page()
        await page.goto(origin + "/shop")
        events = await seen.take(2)
        assert await page.evaluate("rstat('consent')") == "denied" and await page.is_hidden("#consent-banner")
        await page.evaluate("rstat('consent', 'granted')")  # the page's word cannot override the browser's
        await wait_for(lambda: len(seen.named("consent")) == 1, timeout=10, what="the attempted grant")
        assert {e[wire.CONSENT_FIELD] for e in seen.events} == {0} and {e["uid"] for e in seen.events} == {events[0]["uid"]}
        assert await ctx.cookies() == []
        await ctx.close()
