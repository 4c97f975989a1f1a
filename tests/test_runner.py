"""`band run` as a real process: starts, serves, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from support.poll import pinged, wait_for

from band import App
from band.testing import serve

SLOW_SERVICE = '''
import asyncio
from band import expose, logger, settings, current_app

@expose()
async def slow(**params):
    await current_app().connection().publish("runner.started", b"")
    await asyncio.sleep(0.5)
    logger.info("slow done", data={"n": params.get("n")})
    return {"n": params.get("n"), "greeting": settings.greeting}
'''


def start(path: Path, nats_url: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "band", "run", str(path)],
        env={**os.environ, "NATS_URL": nats_url, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


async def test_sigterm_lets_in_flight_requests_finish(nats_url: str, nc: Any, tmp_path: Path) -> None:
    service = tmp_path / "slowpoke"
    service.mkdir()
    (service / "main.py").write_text(SLOW_SERVICE)
    (service / "config.yml").write_text("greeting: \"{{GREETING|default('hi')}}\"\n")
    proc = start(service, nats_url, JSON_LOGS="1", GREETING="hello")
    started: list[Any] = []
    try:
        await wait_for(lambda: pinged(nc, "slowpoke"), timeout=15, what="service up")
        async def on_started(msg: Any) -> None:
            started.append(msg)

        await nc.subscribe("runner.started", cb=on_started)
        caller = App("runner-caller")
        async with serve(caller, nats_url):
            calls = [asyncio.ensure_future(caller.rpc.request("slowpoke", "slow", n=i, timeout__=10)) for i in range(20)]
            await wait_for(lambda: len(started) == 20, what="20 requests in flight")
            proc.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*calls)
        assert sorted(r["n"] for r in results) == list(range(20))
        assert all(r["greeting"] == "hello" for r in results)
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    ours = [line for line in lines if "service" in line]
    assert ours and all(line["service"] == "slowpoke" for line in ours)
    assert sum(1 for line in ours if line["event"] == "slow done") == 20
    assert any(line["event"] == "service stopped" for line in ours)
    assert next(line for line in ours if line["event"] == "slow done")["data"]["n"] is not None


async def test_bad_config_stops_the_start_with_a_clear_error(nats_url: str, tmp_path: Path) -> None:
    service = tmp_path / "broken"
    service.mkdir()
    (service / "main.py").write_text("from band import expose\n")
    (service / "config.yml").write_text("api_key: \"{{SURELY_UNSET_VAR_X}}\"\n")
    proc = start(service, nats_url)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "SURELY_UNSET_VAR_X" in err and "config.yml:1" in err and "Traceback" not in err
