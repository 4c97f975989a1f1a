"""Prometheus on every service, and the Grafana dashboard's queries against real /metrics.

A real ``band run`` process with ``METRICS_PORT``, a real edge; the dashboard JSON in
deploy/ may only name metrics those two really expose.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from support.fakes import running_edge, unique
from support.poll import wait_for

from band import wire
from band.cli.ports import free_port

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "grafana" / "band.json"
SCRAPE = REPO / "deploy" / "prometheus" / "prometheus.yml"
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "summary": ("_sum", "_count", "_created")}


def names(exposition: str) -> set[str]:
    """Every series name a /metrics page can produce (also families with no sample yet)."""
    found: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            base = name.removesuffix("_total")
            found |= {name, base, *(base + s for s in _SUFFIXES.get(kind, ()))}
        elif line and not line.startswith("#"):
            found.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return found


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return resp.read().decode()  # type: ignore[no-any-return]
    except OSError:
        return None


@pytest.fixture
def service_process(tmp_path: Path, nats_url: str) -> Iterator[tuple[str, int]]:
    name = unique("metered")
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
        from band import expose, RPCError

        @expose()
        async def hello(who: str) -> str:
            if who == "nobody":
                raise RPCError("nobody is here", 404)
            return "hello " + who

        @expose.listener(keys=["in.gen.{name}"], durable=True)
        async def keep(**message):
            pass
    """))
    port = free_port()
    env = {**os.environ, "NATS_URL": nats_url, "METRICS_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "band", "run", str(tmp_path / f"{name}.py")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield name, port
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out.decode()


async def test_service_metrics_and_dashboard(service_process: tuple[str, int], nats_url: str) -> None:
    name, port = service_process
    await wait_for(lambda: scrape(port) is not None, timeout=20, what="the service's /metrics")
    nc = await nats.connect(nats_url)
    try:
        await wait_for(lambda: _answers(nc, name), timeout=10, what="the service answers")
        bad = await nc.request(wire.rpc_subject(name, "hello"), b'{"who": "nobody"}', timeout=2)
        assert wire.error_from_headers(bad.headers) == (404, "nobody is here")
        js = nc.jetstream()
        await js.publish(f"in.gen.{name}.page", b'{"key": "in.gen.x.y", "id": "1"}')
    finally:
        await nc.close()

    page = scrape(port) or ""
    assert re.search(rf'band_service_requests_total{{method="hello",role="rpc",service="{name}"}} [2-9]', page), page
    assert f'band_service_errors_total{{code="404",method="hello",role="rpc",service="{name}"}} 1.0' in page
    assert "band_service_latency_seconds_bucket" in page and "process_resident_memory_bytes" in page
    await wait_for(lambda: 'role="listener"' in (scrape(port) or ""), timeout=10, what="the durable delivery counted")
    assert f'band_durable_lag{{consumer="{name}_keep",service="{name}"}} 0.0' in (scrape(port) or "")

    async with running_edge(nats_url) as (client, _edge):
        await client.get("/track/page")
        edge_page = await (await client.get("/metrics")).text()

    assert "process_cpu_seconds_total" in edge_page, "the edge exposes its process metrics too"
    exposed = names(page) | names(edge_page)
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(queries) >= 10
    for query in queries:
        metrics = set(re.findall(r"\b((?:band|process)_[a-z0-9_]+)\b", query))
        assert metrics, f"query names no metric: {query}"
        assert metrics <= exposed, f"{query} names {metrics - exposed}, which no /metrics exposes"
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for topic in ("hits/s", "status", "latency", "enricher timeouts", "requests/s", "errors"):
        assert topic in titles


async def _answers(nc: Any, name: str) -> bool:
    try:
        reply = await nc.request(wire.rpc_subject(name, "hello"), b'{"who": "you"}', timeout=0.5)
    except Exception:
        return False
    return bool(wire.decode(reply.data)["data"] == "hello you")


def test_scrape_config_names_the_edge_and_every_compose_service() -> None:
    import yaml

    config = yaml.safe_load(SCRAPE.read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = {n for n, svc in compose["services"].items() if "band" in svc.get("command", []) and "run" in svc["command"]}
    assert "edge:8080" in targets
    listed = {t for t in targets if t != "edge:8080"}
    wanted = {f"{s}:9100" for s in services}
    assert wanted == listed, f"deploy/prometheus/prometheus.yml: add {wanted - listed}, remove {listed - wanted}"


def test_bad_metrics_port_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text("from band import expose\n")
    env = {**os.environ, "METRICS_PORT": "lots", "NATS_URL": "nats://127.0.0.1:1"}
    result = subprocess.run([sys.executable, "-m", "band", "run", str(tmp_path / "svc.py")], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "METRICS_PORT must be a port number" in result.stderr
