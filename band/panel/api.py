"""The panel's JSON endpoints: everything the pages show, usable without the pages."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats.errors
import nats.js.errors
from aiohttp import web
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from .. import wire
from ..errors import RPCError, ServiceUnavailable
from . import answers, charts, eventcounts, history, jetstream, people, queries
from .config import PanelConfig
from .control import ACTIONS, ControlClient
from .rpc import JsonRpc
from .sampler import Sampler

CONFIG: web.AppKey[PanelConfig] = web.AppKey("config", PanelConfig)
NC: web.AppKey[Client] = web.AppKey("nc", Client)
SAMPLER: web.AppKey[Sampler] = web.AppKey("sampler", Sampler)
CONTROL: web.AppKey[ControlClient] = web.AppKey("control", ControlClient)
MAX_SQL = 100_000
STORE_TIMEOUT_S = 30.0


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise _bad("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    return body


async def overview(request: web.Request) -> web.Response:
    return web.json_response(request.app[SAMPLER].overview())


async def services(request: web.Request) -> web.Response:
    return web.json_response({"services": request.app[SAMPLER].services()})


async def edge(request: web.Request) -> web.Response:
    return web.json_response({"edges": request.app[SAMPLER].edge()})


async def jetstream_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[SAMPLER].jetstream)


# --- charts -----------------------------------------------------------------------------
class ChartCache:
    """The 24-hour counts, computed at most once a minute however many pages ask."""

    TTL_S = 60.0

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.at = {False: -self.TTL_S, True: -self.TTL_S}  # bots excluded, bots included
        self.data: dict[bool, dict[str, Any]] = {}


CHART_CACHE: web.AppKey[ChartCache] = web.AppKey("chart_cache", ChartCache)


async def events_chart_data(request: web.Request) -> dict[str, Any]:
    """The events chart's counts; ``?bots=1`` includes the events the edge flagged as bots."""
    config, cache = request.app[CONFIG], request.app[CHART_CACHE]
    bots = request.query.get("bots") == "1"
    async with cache.lock:
        now = time.monotonic()
        if now - cache.at[bots] >= cache.TTL_S or request.query.get("fresh") == "1":
            cache.data[bots] = await eventcounts.events_per_name(request.app[NC], config.store_service, config.stream_count_limit, bots)
            cache.at[bots] = now
        return cache.data[bots]


def _edge_series(request: web.Request, index: int) -> tuple[list[float], dict[str, list[float]]]:
    """Times and per-label rates from the sampler: ``index`` 1 = hits by status, 2 = enricher timeouts."""
    history = list(request.app[SAMPLER].edge_history)
    times = [h[0] for h in history]
    rows = [h[1] if index == 1 else h[2] for h in history]
    names = sorted({name for row in rows for name in row})
    return times, {name: [row.get(name, 0.0) for row in rows] for name in names}


async def charts_json(request: web.Request) -> web.Response:
    times, statuses = _edge_series(request, 1)
    _, timeouts = _edge_series(request, 2)
    return web.json_response({
        "events": await events_chart_data(request),
        "edge": {"times": times, "hits_per_s_by_status": statuses, "enricher_timeouts_per_s": timeouts},
    })


async def chart_svg(request: web.Request) -> web.Response:
    which = request.match_info["which"]
    if which == "events":
        data = await events_chart_data(request)
        title = f"Events per name, last 24 h, 15-minute buckets ({data['note']})"
        svg = charts.stacked_bars(data["times"], data["series"], title, unit="events")
    elif which in ("statuses", "timeouts"):
        times, series = _edge_series(request, 1 if which == "statuses" else 2)
        if which == "statuses":
            colours = {s: charts.status_colour(s, i) for i, s in enumerate(series)}
            svg = charts.lines(times, series, "Edge hits per second by HTTP status (since the panel started)", unit="hits/s",
                              colours=colours, empty="no hits yet")
        else:
            svg = charts.lines(times, series, "Enricher timeouts per second, by enricher (since the panel started)", unit="timeouts/s",
                              empty="no enricher missed its deadline")
    else:
        raise web.HTTPNotFound()
    return web.Response(text=svg, content_type="image/svg+xml", headers={"Cache-Control": "no-store"})


# --- the store --------------------------------------------------------------------------
async def store_saved(_request: web.Request) -> web.Response:
    return web.json_response({"queries": [{"title": t, "sql": s} for t, s in queries.SAVED]})


def _store_failed(config: PanelConfig, exc: RPCError) -> web.Response:
    if isinstance(exc, ServiceUnavailable):
        return _error(503, f"no '{config.store_service}' service is running: start the store (band up runs it when it is in your services)")
    return _error(exc.code if 400 <= exc.code < 600 else 502, exc.message)


async def user_history(request: web.Request) -> web.Response:
    uid, user_id, by = request.query.get("uid"), request.query.get("user_id"), request.query.get("by", "person")
    wrong = history.problem(uid, user_id, by)
    if wrong:
        return _error(400, wrong)
    config = request.app[CONFIG]
    try:
        return web.json_response(await history.timeline(lambda: request.app[NC], config.store_service, uid, user_id, by))
    except RPCError as exc:
        return _store_failed(config, exc)


async def person_show(request: web.Request) -> web.Response:
    """The person of any identifier: devices, identifiers, traits, merges (the store's ``identity``)."""
    try:
        which = people.identifier(request.query.get("id", ""))
    except ValueError as exc:
        return _error(400, str(exc))
    config = request.app[CONFIG]
    try:
        return web.json_response(await people.show(lambda: request.app[NC], config.store_service, which))
    except RPCError as exc:
        return _store_failed(config, exc)


def _operator(config: PanelConfig) -> str:
    """Who asked, as the store records it: ``panel:<PANEL_USER>``, or ``panel:admin`` with a token."""
    return f"panel:{config.user or 'admin'}"


async def person_act(request: web.Request) -> web.Response:
    """``POST /api/person/merge`` ``{"a", "b"}`` or ``/api/person/split`` ``{"id"}``: the store's RPC, recorded."""
    action, body, config = request.match_info["action"], await _json_body(request), request.app[CONFIG]
    try:
        if action == "merge":
            a, b = people.identifier(str(body.get("a") or "")), people.identifier(str(body.get("b") or ""))
            done = await people.merge(lambda: request.app[NC], config.store_service, a, b, _operator(config))
        elif action == "split":
            done = await people.split(lambda: request.app[NC], config.store_service, people.identifier(str(body.get("id") or "")),
                                      _operator(config))
        else:
            return _error(404, f"unknown action {action!r}: use merge or split")
    except ValueError as exc:
        return _error(400, str(exc))
    except RPCError as exc:
        return _store_failed(config, exc)
    return web.json_response(done)


async def _sql_body(request: web.Request) -> tuple[str, dict[str, Any] | None]:
    """``sql`` and ``params`` from a JSON body, or from a form (the page's CSV download is a
    form post, so the browser saves the file as it streams in)."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        sql: Any = form.get("sql")
        try:
            params: Any = json.loads(str(form.get("params") or "null"))
        except ValueError:
            raise _bad("params must be a JSON object of {name: value} for {name:Type} placeholders") from None
    else:
        body = await _json_body(request)
        sql, params = body.get("sql"), body.get("params")
    if not isinstance(sql, str) or not sql.strip():
        raise _bad("send {\"sql\": \"SELECT ...\"}: the query is missing")
    if len(sql) > MAX_SQL:
        raise _bad(f"the query is longer than {MAX_SQL} characters")
    if params is not None and not isinstance(params, dict):
        raise _bad("params must be an object of {name: value} for {name:Type} placeholders")
    return sql, params or None


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def store_query(request: web.Request) -> web.StreamResponse:
    """The first rows of any answer (JSON), or with ``?format=csv`` every row, streamed."""
    sql, params = await _sql_body(request)
    config = request.app[CONFIG]
    try:
        if request.query.get("format") == "csv":
            return await answers.csv_download(request, request.app[NC], config.store_service, sql, params, STORE_TIMEOUT_S)
        return web.json_response(await answers.first_rows(request.app[NC], config.store_service, sql, params,
                                                          STORE_TIMEOUT_S))
    except RPCError as exc:
        return _store_failed(config, exc)
    except ValueError as exc:
        return _error(502, str(exc))


# --- dead letters -------------------------------------------------------------------------
def _seq(request: web.Request) -> int:
    try:
        return int(request.match_info["seq"])
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "a dead letter is named by its sequence number"}', content_type="application/json") from None


async def dlq_list(request: web.Request) -> web.Response:
    return web.json_response(await jetstream.dead_letters(request.app[NC].jetstream()))


async def dlq_one(request: web.Request) -> web.Response:
    try:
        return web.json_response(await jetstream.dead_letter(request.app[NC].jetstream(), _seq(request)))
    except NotFoundError:
        return _error(404, f"no dead letter {request.match_info['seq']} (replayed or dropped already?)")


async def dlq_act(request: web.Request) -> web.Response:
    js, seq, action = request.app[NC].jetstream(), _seq(request), request.match_info["action"]
    try:
        if action == "replay":
            return web.json_response(await jetstream.replay(js, seq))
        if action == "drop":
            return web.json_response(await jetstream.drop(js, seq))
    except NotFoundError:
        return _error(404, f"no dead letter {seq} (replayed or dropped already?)")
    except ValueError as exc:
        return _error(400, str(exc))
    return _error(404, f"unknown action {action!r}: use replay or drop")


# --- control --------------------------------------------------------------------------------
async def control_list(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CONTROL].children())


async def control_act(request: web.Request) -> web.Response:
    action, name = request.match_info["action"], request.match_info["name"]
    if action not in ACTIONS:
        return _error(404, f"unknown action {action!r}: use {', '.join(ACTIONS)}")
    if not wire.is_token(name):
        return _error(404, f"no process named {name!r}")
    status, body = await request.app[CONTROL].act(name, action)
    return web.json_response(body, status=status)


# --- JSON-RPC 2.0 -------------------------------------------------------------------------------
async def json_rpc(request: web.Request) -> web.Response:
    answer = await JsonRpc(lambda: request.app[NC], request.app[CONFIG].rpc_timeout_s).handle_text(await request.read())
    if answer is None:
        return web.Response(status=204)
    return web.json_response(answer)


@web.middleware
async def nats_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """NATS or JetStream trouble (down, JetStream off, a timeout) as a 503 that says so."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except (nats.errors.Error, nats.js.errors.Error) as exc:
        return _error(503, f"NATS/JetStream did not answer ({type(exc).__name__}: {exc}); is nats-server running with JetStream (-js)?")


def add_routes(app: web.Application) -> None:
    app[CHART_CACHE] = ChartCache()
    r = app.router
    r.add_get("/api/overview", overview)
    r.add_get("/api/services", services)
    r.add_get("/api/edge", edge)
    r.add_get("/api/jetstream", jetstream_state)
    r.add_get("/api/charts", charts_json)
    r.add_get("/api/charts/{which}.svg", chart_svg)
    r.add_get("/api/store/saved", store_saved)
    r.add_post("/api/store/query", store_query)
    r.add_get("/api/history", user_history)
    r.add_get("/api/person", person_show)
    r.add_post("/api/person/{action}", person_act)
    r.add_get("/api/deadletters", dlq_list)
    r.add_get("/api/deadletters/{seq}", dlq_one)
    r.add_post("/api/deadletters/{seq}/{action}", dlq_act)
    r.add_get("/api/control", control_list)
    r.add_post("/api/control/{name}/{action}", control_act)
    r.add_post("/api/rpc", json_rpc)


__all__ = ["CONFIG", "CONTROL", "NC", "SAMPLER", "add_routes"]
