"""Uploads under the repository's nats.conf: the edge stores and cleans up with its own
credential, the csvimport example reads with svc_csvimport; nothing is refused."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from e2e.test_examples import example
from support.deploy import NATS_CONF, conf_server, inbox_of, password_env, url
from support.fakes import routed, running_edge
from test_upload import MiB, big_file_body, raw_upload

from band.cli.natsserver import NatsServer
from band.testing import serve

pytestmark = pytest.mark.skipif(not NATS_CONF.exists(), reason="nats.conf not written yet")


@pytest.fixture
def conf(tmp_path: Path) -> Iterator[tuple[NatsServer, dict[str, str]]]:
    env = password_env()
    with conf_server(tmp_path, env) as server:
        yield server, env


async def test_upload_and_cleanup_under_the_conf(conf: tuple[NatsServer, dict[str, str]], tmp_path: Path) -> None:
    server, env = conf
    assert inbox_of("edge")  # the edge connects with its own inbox prefix (EDGE_NAME)
    async with serve(example("csvimport"), url("svc_csvimport", env, server.port)), \
            running_edge(url("edge", env, server.port), upload_max_bytes=2 * MiB) as (client, edge):
        await routed(edge, "in.gen.csvimport.rows")
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(b"a,b\n1,2\n3,4\n"), filename="t.csv", content_type="text/csv")
        resp = await client.post("/upload/csvimport/rows", data=form)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["files"][0]["rows"] == 2
        # over the limit mid-body: the edge purges what it wrote (its purge grant)
        status, _ = await raw_upload(client.server.host, client.server.port, "/upload/csvimport/rows", big_file_body(4 * MiB, 5))
        assert status == 413
    log = (tmp_path / "nats-server.log").read_text()
    assert "Violation" not in log, [line for line in log.splitlines() if "Violation" in line]


def test_edge_user_may_not_purge_the_events_stream() -> None:
    text = NATS_CONF.read_text()
    edge = text[text.index("user: edge"):text.index("user: admin")]
    assert '"$JS.API.STREAM.PURGE.BAND_EVENTS"' in edge.split("deny:")[1].split("]")[0]
    assert "$JS.API.STREAM.PURGE.OBJ_band_uploads" in edge


