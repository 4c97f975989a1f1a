"""band's tracker in headless Chromium (Debian's /usr/bin/chromium via Playwright), on a
page served from another site than the edge, over HTTP and over the edge's own TLS."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from support.browser import needs_chromium, snippet
from support.fakes import edge_config
from support.poll import wait_for
from support.sdk import arrivals, make_edge_certs, site

from broker.app import make_app

pytestmark = needs_chromium

@pytest.fixture(scope="module")
def edge_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_edge_certs(tmp_path_factory)



PAGE = """<!doctype html><html><head><title>Winter sale</title>%(prelude)s%(snippet)s</head>
<body><p>shop</p><button id=buy onclick="rstat('identify', 'user-42', {tier: 'gold'}); rstat('event', 'signup', {plan: 'pro'})">buy</button>
<a id=next href="/shop?from=menu">next</a></body></html>"""




async def visit(
    browser: Any, nc: Any, edge_origin: str, page_host: str, site_url: str, prelude: str = "", referer: str | None = None, **context: Any
) -> tuple[str, list[dict[str, Any]]]:
    """Open the shop page, click, open a second page; the uid /lib.js handed out and the events."""
    server = edge_origin.split("//", 1)[1]
    html = PAGE % {"prelude": prelude, "snippet": snippet(edge_origin, "rstat('page', {section: 'shoes'});", server)}
    async with site({"/shop": html}) as origin, arrivals(nc, "in.gen.track.>") as seen:
        url = origin.replace("127.0.0.1", page_host) + site_url
        ctx = await browser.new_context(**context)
        page = await ctx.new_page()
        handed: list[str] = []

        async def on_response(resp: Any) -> None:
            if resp.url.endswith("/lib.js"):
                handed.append(await resp.text())

        page.on("response", on_response)
        await page.goto(url, referer=referer)
        await seen.take(2)  # session + page
        await page.click("#buy")
        await seen.take(4)  # identify + signup
        await page.click("#next")  # the next page of the visit
        await wait_for(lambda: len(seen.named("page")) >= 2, timeout=10, what="the second page view")
        await ctx.close()
    prefix = re.match(r"^;window\[\"rstat\"\]&&window\[\"rstat\"\]\('configure',(\{.*?\})\);", handed[0])
    assert prefix, handed[0][:200]
    return json.loads(prefix[1])["initialUid"], list(seen.events)


def check(events: list[dict[str, Any]], uid: str, page_url: str) -> None:
    by_name = {e["name"]: e for e in events[:4]}
    assert set(by_name) >= {"session", "page", "identify", "signup"}, [e["name"] for e in events]
    assert {e["uid"] for e in events} == {uid}  # one visitor, though the edge's cookie is never sent cross-site
    page = by_name["page"]
    data = page["data"]
    assert page["key"] == "in.gen.track.page" and page["service"] == "track"
    assert data["data"] == {"section": "shoes"}
    assert data["page"]["url"] == page_url and data["page"]["title"] == "Winter sale"
    sess = data["sess"]
    assert sess["num"] == 1 and sess["pageNum"] == 1 and sess["type"] == "campaign"
    assert sess["marks"]["utm_source"] == "newsletter" and sess["marks"]["utm_campaign"] == "winter"
    assert data["browser"]["w"] > 0 and data["browser"]["h"] > 0
    assert data["user"]["tz"] and isinstance(data["user"]["ts"], int)
    assert data["lib"]["id"] == "band-tracker"
    signup = by_name["signup"]
    assert signup["data"]["data"] == {"plan": "pro"} and signup["data"]["sess"]["eventNum"] == 2  # after identify
    assert signup["data"]["user"]["id"] == "user-42" and signup["data"]["user"]["tier"] == "gold"  # identify
    assert "id" not in page["data"]["user"]
    identify = by_name["identify"]  # the store joins uid and user.id, and keeps the traits on the person
    assert identify["data"]["user"]["id"] == "user-42" and identify["data"]["data"] == {"traits": {"tier": "gold"}}
    second = [e for e in events if e["name"] == "page"][1]  # same session, same visitor
    assert second["data"]["sess"]["num"] == 1 and second["data"]["sess"]["pageNum"] == 2
    assert second["data"]["page"]["url"].endswith("/shop?from=menu") and second["data"]["page"]["ref"] == page_url
    assert len(by_name) == 4 and not [e for e in events if e["name"] == "session"][1:]


async def test_tracker_cross_site_over_http(browser: Any, nc: Any, nats_url: str) -> None:
    app = make_app(edge_config(nats_url, cookie_secure=False))
    sdk_sent: list[str] = []  # /lib.js answers with a body, as the edge wrote them

    async def count(request: Any, response: Any) -> None:
        if request.path == "/lib.js" and response.status == 200:
            sdk_sent.append(response.headers.get("Content-Encoding", "identity"))

    app.on_response_prepare.append(count)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        edge_origin = str(client.make_url("")).rstrip("/")
        path = "/shop?utm_source=newsletter&utm_campaign=winter"
        uid, events = await visit(browser, nc, edge_origin, "localhost", path)
        site_url = next(e for e in events if e["name"] == "page")["data"]["page"]["url"]
        assert site_url.startswith("http://localhost:") and site_url.endswith(path)
        check(events, uid, site_url)
    # two page views, one download of the SDK, gzipped: the second page took the browser's copy
    assert sdk_sent == ["gzip"]


async def test_tracker_over_the_edges_own_tls(browser: Any, nc: Any, nats_url: str, edge_certs: Path) -> None:
    config = edge_config(nats_url, certfile=str(edge_certs / "server.pem"), keyfile=str(edge_certs / "server-key.pem"))
    from broker.tls import server_context

    server = TestServer(make_app(config), host="127.0.0.1", port=0)
    await server.start_server(ssl=server_context(config))
    try:
        edge_origin = f"https://localhost:{server.port}"
        path = "/shop?utm_source=newsletter&utm_campaign=winter"
        uid, events = await visit(browser, nc, edge_origin, "127.0.0.1", path, ignore_https_errors=True)
        site_url = next(e for e in events if e["name"] == "page")["data"]["page"]["url"]
        assert site_url.startswith("http://127.0.0.1:")
        check(events, uid, site_url)
    finally:
        await server.close()


NO_BEACON = "<script>navigator.sendBeacon = undefined;</script>"
NO_BEACON_NO_XHR = "<script>navigator.sendBeacon = undefined; window.XMLHttpRequest = undefined;</script>"


@pytest.mark.parametrize("prelude,channel", [(NO_BEACON, "http"), (NO_BEACON_NO_XHR, "pixel")], ids=["xhr", "image"])
async def test_tracker_fallback_transports(browser: Any, nc: Any, nats_url: str, prelude: str, channel: str) -> None:
    """Without sendBeacon the tracker posts with XHR; without XHR too, an image GET whose
    qs-encoded fields (data[section]=…, sess[num]=…) arrive nested."""
    app = make_app(edge_config(nats_url, cookie_secure=False))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        edge_origin = str(client.make_url("")).rstrip("/")
        uid, events = await visit(browser, nc, edge_origin, "localhost", "/shop?utm_source=newsletter&utm_campaign=winter", prelude=prelude)
    assert {e["uid"] for e in events} == {uid} and {e["channel"] for e in events} == {channel}
    page = next(e for e in events if e["name"] == "page")["data"]
    assert page["data"] == {"section": "shoes"}
    if channel == "pixel":  # the image carries the cropped message, as the SDK's does; values are strings
        assert page["sess"] == {"num": "1", "pageNum": "1", "eventNum": "0", "type": "campaign"}
        assert page["user"]["tz"] and "page" not in page
    else:
        assert page["sess"]["num"] == 1 and page["page"]["title"] == "Winter sale"


async def test_tracker_session_source_from_the_referrer(browser: Any, nc: Any, nats_url: str) -> None:
    app = make_app(edge_config(nats_url, cookie_secure=False))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        edge_origin = str(client.make_url("")).rstrip("/")
        _, events = await visit(browser, nc, edge_origin, "localhost", "/shop", referer="https://www.google.com/search?q=boots")
    sess = next(e for e in events if e["name"] == "page")["data"]["sess"]
    assert sess["type"] == "organic" and sess["engine"] == "google" and sess["refhost"] == "google.com"
    assert sess["hasMarks"] is False and sess["marks"] == {}
