"""The edge in front of real band services (band.testing.serve)."""

from __future__ import annotations

import json
from typing import Any

from support.fakes import enrichers_seen, routed, running_edge, unique
from support.poll import wait_for

from band import App, response
from band.testing import serve


async def test_track_page_with_enrichers_handler_listener(nc: Any, nats_url: str) -> None:
    track, geo, ua = unique("track"), unique("geo"), unique("ua")
    key = f"in.gen.{track}.page"
    heard: list[dict[str, Any]] = []

    app = App(track)

    @app.expose.handler(timeout=1000)
    async def page(data: dict[str, Any], uid: str, **message: Any) -> Any:
        return response.data({"uid": uid, "country": data[geo]["country"], "os": data[ua]["os"]})

    @app.expose.listener(keys=[f"in.gen.{track}"])
    async def store(**message: Any) -> None:
        heard.append(message)

    geo_app = App(geo)

    @geo_app.expose.enricher(props={"ip": "td.ip"}, keys=[f"in.gen.{track}"])
    async def locate(ip: str, **_: Any) -> Any:
        return {"country": "NL", "ip": ip}

    ua_app = App(ua)

    @ua_app.expose.enricher(props={"agent": "td.ua"}, keys=[key])
    async def parse(agent: str, **_: Any) -> Any:
        return {"os": "Linux" if "Linux" in agent else "?"}

    async with serve(app, nats_url), serve(geo_app, nats_url), serve(ua_app, nats_url), running_edge(nats_url) as (client, edge):
        await routed(edge, key)
        await enrichers_seen(edge, key, {geo, ua})
        resp = await client.get(f"/{track}/page?x=1", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)", "Cookie": "uid=6462464730849083392"})
        assert resp.status == 200
        assert await resp.json() == {"uid": "6462464730849083392", "country": "NL", "os": "Linux"}
        await wait_for(lambda: len(heard) == 1, what="listener got the event")
        assert heard[0]["data"]["x"] == "1" and heard[0]["data"][geo]["country"] == "NL"

        native = await client.post(f"/band/{track}/page.json", data=json.dumps({"y": 2}), headers={"Content-Type": "text/plain"})
        assert (await native.json())["type__"] == "data"


async def test_band_handler_kinds(nats_url: str) -> None:
    svc = unique("kinds")
    app = App(svc)

    @app.expose.handler()
    async def pix(**_: Any) -> Any:
        return response.pixel()

    @app.expose.handler()
    async def go(data: dict[str, Any], **_: Any) -> Any:
        return response.redirect(data.get("to", "https://example.com/"))

    @app.expose.handler()
    async def crash(**_: Any) -> Any:
        raise KeyError("database password is hunter2")

    @app.expose.handler()
    async def needs(required_arg: str) -> Any:
        return response.data({})

    @app.expose.handler(path=f"/{svc}-item/:item_id")
    async def item(item_id: str, **_: Any) -> Any:
        return response.data({"item": item_id})

    @app.expose.handler(path="/mymethod/:id")  # the documented example: :id is not the event id
    async def mymethod(id: str, params: dict[str, str], **_: Any) -> Any:
        return response.data({"id": id, "params": params})

    async with serve(app, nats_url), running_edge(nats_url) as (client, edge):
        await routed(edge, f"in.gen.{svc}.item")
        pixel = await client.get(f"/{svc}/pix")
        assert pixel.content_type == "image/gif"
        go = await client.get(f"/{svc}/go", allow_redirects=False)
        assert go.status == 302 and go.headers["Location"] == "https://example.com/"
        evil = await client.get(f"/{svc}/go?to=javascript:alert(1)", allow_redirects=False)
        assert evil.status == 502
        crash = await client.get(f"/{svc}/crash")
        assert crash.status == 500 and await crash.json() == {"message": "Internal Server Error"}
        needs = await client.get(f"/{svc}/needs")
        assert needs.status == 400 and "required_arg" in (await needs.json())["message"]
        routed_item = await client.get(f"/{svc}-item/42")
        assert await routed_item.json() == {"item": "42"}
        await routed(edge, f"in.gen.{svc}.mymethod")
        documented = await client.get("/mymethod/7")
        assert await documented.json() == {"id": "7", "params": {"id": "7"}}
