"""A store that starts while JetStream is not there keeps trying to make its consumer,
says so, and writes every event once JetStream is back (it used to run on writing nothing)."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from support.poll import wait_for
from support.store import counted, event, publish, start_store

from band import App
from band._core.app import reset_current, set_current
from band.cli.natsserver import NatsServer

pytest.importorskip("chdb")


@pytest.mark.slow
async def test_a_store_started_before_jetstream_writes_once_it_is_there(tmp_path: Path) -> None:
    plain = tmp_path / "no-jetstream.conf"
    plain.write_text("# a nats-server without JetStream\n")
    without = NatsServer(store_dir=tmp_path / "none", config=plain).start()
    proc = start_store(tmp_path, without.url)
    try:
        await wait_for(lambda: "cannot make its consumer yet; retrying" in proc.text(), 60,
                       "the store saying it waits for JetStream", procs=[proc])
        without.stop()
        with NatsServer(store_dir=tmp_path / "js", port=without.port) as server:  # the same address, JetStream on
            nc = await nats.connect(server.url)
            app = App("tester")
            app.nc = nc
            token = set_current(app)
            try:
                await publish(nc, [event(n) for n in range(25)])
                await counted(25, proc, timeout=90)
            finally:
                reset_current(token)
                await nc.close()
            assert proc.stop() == 0, proc.text()[-3000:]
    finally:
        without.stop()
        if proc.alive():
            proc.stop()
