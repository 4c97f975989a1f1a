"""Decorators record and validate; nothing runs."""

from __future__ import annotations

from typing import Any

import pytest

from band import App, ConfigError


def test_decorators_record_without_io() -> None:
    app = App("rec")

    @app.expose.handler(name="*", alias="go", timeout=500, path="/go/:id")
    async def go(name: str, **params: Any) -> None: ...

    @app.expose.enricher(props={"ip": "td.ip"}, keys=["in.gen.track"])
    async def enrich(ip: str, **params: Any) -> None: ...

    @app.expose.listener()
    async def broadcast(**params: Any) -> None: ...

    @app.expose()
    async def main(**params: Any) -> None: ...

    [handler] = app.registry.by_role("handler")
    assert (handler.name, handler.alias, handler.timeout_ms, handler.path) == ("*", "go", 500, "/go/:id")
    assert handler.handler_key("rec") == "in.gen.go.*"
    assert app.registry.find_handler("rec", "in.gen.go.anything") is handler
    assert app.registry.find_handler("rec", "in.gen.rec.anything") is None
    assert set(app.registry.rpc_methods()) == {"go", "main"}
    assert app.nc is None


@pytest.mark.parametrize("declare, message", [
    (lambda app: app.expose.handler(name="a.b"), "handler name"),
    (lambda app: app.expose.handler(alias="x y"), "alias"),
    (lambda app: app.expose.handler(timeout=0), "timeout"),
    (lambda app: app.expose.handler(path="nope"), "path"),
    (lambda app: app.expose.enricher(keys=["out.gen"]), "key prefix"),
    (lambda app: app.expose.enricher(props={"ip": 5}), "props"),
    (lambda app: app.expose.enricher(bots="no"), "enricher bots must be True or False"),
    (lambda app: app.expose.listener(max_deliver=0), "max_deliver"),
])
def test_bad_declarations_raise_config_error(declare: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        declare(App("bad"))(_noop)


async def _noop(**params: Any) -> None: ...


def test_an_enricher_says_whether_it_wants_bots() -> None:
    app = App("geo")
    app.expose.enricher(props={"ip": "td.ip"}, bots=False)(_noop)

    async def every(**params: Any) -> None: ...

    app.expose.enricher()(every)
    by_method = {ep.method: ep.bots for ep in app.registry.by_role("enricher")}
    assert by_method == {"_noop": False, "every": True}  # the default: every hit, as before


def test_sync_functions_and_duplicates_are_refused() -> None:
    app = App("dup")
    with pytest.raises(ConfigError, match="async def"):
        app.expose()(lambda: None)

    @app.expose.handler(name="x")
    async def one(**p: Any) -> None: ...

    with pytest.raises(ConfigError, match="both claim"):
        @app.expose.handler(name="x")
        async def two(**p: Any) -> None: ...


def test_bad_service_name() -> None:
    with pytest.raises(ConfigError, match="service name"):
        App("has.dot")
