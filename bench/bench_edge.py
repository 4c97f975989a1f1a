"""Edge throughput and latency against bare aiohttp serving the same GIF, in one run.

Not a test: run it by hand on a quiet machine and read the ratios.

    /tmp/v/bin/python bench/bench_edge.py            # wrk if installed, else a Python load generator
    /tmp/v/bin/python bench/bench_edge.py --duration 10 --soak 60

Scenarios (32 connections each):
  bare    aiohttp answering the 43-byte GIF (the yardstick)
  floor   aiohttp + one nats-py request to the pixel handler + one JetStream publish,
          nothing else: what the client library alone costs per hit
  pixel   GET /benchpix/hit through the edge; the handler is a band service
  track   GET /benchtrack/page: two enricher services, one handler, one listener, JetStream
  p99     the track scenario at half its measured rate, open loop, for --soak seconds;
          the edge's RSS is sampled the whole time
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONNECTIONS = 32


# --- the processes under test -------------------------------------------------------
def bare_server(port: int) -> None:
    from aiohttp import web

    from band.response import PIXEL_GIF

    async def gif(request: web.Request) -> web.Response:
        return web.Response(body=PIXEL_GIF, content_type="image/gif")

    app = web.Application()
    app.router.add_get("/{tail:.*}", gif)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def floor_server(port: int, nats_url: str) -> None:
    """The client-library floor: aiohttp + one nats-py request + one JetStream publish per
    hit, none of the edge's own work (parsing, ids, cookies, metrics, discovery)."""
    import itertools

    import nats
    from aiohttp import web

    from band.response import PIXEL_GIF

    async def main() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        ids = itertools.count()

        async def hit(request: web.Request) -> web.Response:
            await nc.request("band.handle.in.gen.benchpix.hit", b'{"key":"in.gen.benchpix.hit","data":{}}', timeout=1)
            await js.publish("in.gen.floor.hit", b"{}", headers={"Nats-Msg-Id": f"floor-{next(ids)}"})
            return web.Response(body=PIXEL_GIF, content_type="image/gif")

        app = web.Application()
        app.router.add_get("/{tail:.*}", hit)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())


def services(nats_url: str) -> None:
    """The band services of the scenarios, each on its own connection (as `band run` would)."""
    from typing import Any as _Any

    from band import App, response
    from band.testing import serve

    pix = App("benchpix")

    @pix.expose.handler()
    async def hit(**_: _Any) -> _Any:
        return response.pixel()

    track = App("benchtrack")

    @track.expose.handler()
    async def page(data: dict[str, _Any], **_: _Any) -> _Any:
        return response.data({"ok": True})

    @track.expose.listener(keys=["in.gen.benchtrack"])
    async def store(**_: _Any) -> None:
        return None

    geo = App("benchgeo")

    @geo.expose.enricher(props={"ip": "td.ip"}, keys=["in.gen.benchtrack"])
    async def locate(ip: str, **_: _Any) -> _Any:
        return {"country": "NL"}

    ua = App("benchua")

    @ua.expose.enricher(props={"agent": "td.ua"}, keys=["in.gen.benchtrack"])
    async def parse(agent: str, **_: _Any) -> _Any:
        return {"os": "Linux"}

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with serve(pix, nats_url), serve(track, nats_url), serve(geo, nats_url), serve(ua, nats_url):
            print("ready", flush=True)
            await stop.wait()

    asyncio.run(main())


# --- load ------------------------------------------------------------------------------
def wrk(url: str, duration: float) -> float:
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{int(duration)}s", url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"    ! {errors.group(1)} non-2xx answers", flush=True)
    assert match, out
    return float(match.group(1))


async def _closed_loop(url: str, duration: float) -> tuple[int, int]:
    import aiohttp

    done = errors = 0
    deadline = time.monotonic() + duration
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as session:

        async def worker() -> None:
            nonlocal done, errors
            while time.monotonic() < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                    done += 1
                    errors += resp.status >= 400

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return done, errors


def pyload(url: str, duration: float) -> float:
    done, errors = asyncio.run(_closed_loop(url, duration))
    if errors:
        print(f"    ! {errors} error answers", flush=True)
    return done / duration


def load_child(kind: str, url: str, duration: float, rate: float, out: str) -> None:
    """Runs in its own process so the load generator does not share the edge's loop."""
    if kind == "rps":
        result: Any = pyload(url, duration)
    else:
        result = asyncio.run(_open_loop(url, duration, rate))
    Path(out).write_text(json.dumps(result))


async def _open_loop(url: str, duration: float, rate: float) -> dict[str, Any]:
    """Requests at a fixed rate over 32 connections; latency from the scheduled start."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    total = int(duration * rate)
    interval = 1.0 / rate
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as session:
        start = time.perf_counter()

        async def one(i: int) -> None:
            nonlocal errors
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with session.get(url) as resp:
                await resp.read()
                errors += resp.status >= 400
            latencies.append(time.perf_counter() - due)

        tasks = []
        for i in range(total):
            tasks.append(asyncio.ensure_future(one(i)))
            if len(tasks) >= 2000:
                await asyncio.gather(*tasks)
                tasks.clear()
        await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "sent": total,
        "errors": errors,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk_rate(url: str, duration: float, rate: float) -> dict[str, Any]:
    """wrk at about ``rate`` req/s: each connection waits 32/rate s between requests."""

    def run(delay_ms: float, seconds: float) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(f"function delay() return {max(delay_ms, 0.0):.3f} end\n")
            script = f.name
        try:
            return subprocess.run(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{int(seconds)}s", "--latency", "-s", script, url], capture_output=True, text=True, check=True).stdout
        finally:
            os.unlink(script)

    # a connection's cycle is latency + delay: calibrate the delay for the wanted rate
    cycle_ms = CONNECTIONS * 1000.0 / rate
    probe = float(re.search(r"Requests/sec:\s+([\d.]+)", run(cycle_ms, 3)).group(1))  # type: ignore[union-attr]
    overhead = CONNECTIONS * 1000.0 / probe - cycle_ms
    out = run(cycle_ms - overhead, duration)
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    achieved = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rate": achieved, "requests": total, "p50_ms": _ms(pct["50"]), "p99_ms": _ms(pct["99"]), "max_ms": 0.0, "errors": int(errors.group(1)) if errors else 0}


def in_child(kind: str, url: str, duration: float, rate: float = 0.0) -> Any:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    code = "import sys; sys.path.insert(0, %r); import bench_edge as b; b.load_child(%r, %r, %r, %r, %r)" % (str(Path(__file__).parent), kind, url, duration, rate, out)
    subprocess.run([sys.executable, "-c", code], check=True)
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    return result


def rps(url: str, duration: float, use_wrk: bool) -> float:
    return wrk(url, duration) if use_wrk else float(in_child("rps", url, duration))


# --- plumbing ----------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return own + sum(cpu_s(k) for k in kids if Path(f"/proc/{k}").exists())


def edge_rss(pid: int) -> float:
    """RSS of the edge: the process, or the sum of its workers with --workers N."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return rss_mb(pid) + sum(rss_mb(k) for k in kids if Path(f"/proc/{k}").exists())


def wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.1)


def wait_routed(base: str, timeout: float = 30.0) -> None:
    """Until the edge routes the bench handlers (a band handler answers pixel, not the default)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/benchtrack/page", timeout=5) as resp:
            if json.loads(resp.read()) == {"ok": True}:
                return
        time.sleep(0.2)
    raise TimeoutError("bench services not routed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per throughput scenario")
    parser.add_argument("--soak", type=float, default=60.0, help="seconds of the half-load p99/RSS run")
    parser.add_argument("--workers", type=int, default=1, help="edge worker processes (SO_REUSEPORT)")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python load generator even if wrk is installed")
    args = parser.parse_args()
    use_wrk = bool(shutil.which("wrk")) and not args.no_wrk

    from band.cli import processes
    from band.cli.natsserver import NatsServer
    from band.cli.ports import free_port

    procs: list[subprocess.Popen[bytes]] = []
    store = Path(tempfile.mkdtemp(prefix="bench-js-"))
    nats_server = NatsServer(store_dir=store).start()
    try:
        bare_port, edge_port = free_port(), free_port()
        here = str(Path(__file__).parent)
        procs.append(subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r}); import bench_edge as b; b.bare_server({bare_port})"]))
        svc = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r}); import bench_edge as b; b.services({nats_server.url!r})"], stdout=subprocess.PIPE)
        procs.append(svc)
        assert svc.stdout is not None
        for line in svc.stdout:  # the services log to stdout too
            if line.strip() == b"ready":
                break
        else:
            raise RuntimeError("bench services did not start")
        env = {**os.environ, "EDGE_STREAM_STORAGE": "file"}
        edge = subprocess.Popen([sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(edge_port), "--nats", nats_server.url, "--log-level", "WARNING", "--workers", str(args.workers)], cwd=ROOT, env=env)
        procs.append(edge)
        floor_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r}); import bench_edge as b; b.floor_server({floor_port}, {nats_server.url!r})"]))
        bare, base, floor = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{edge_port}", f"http://127.0.0.1:{floor_port}"
        wait_http(bare + "/x.gif")
        wait_http(base + "/health")  # the edge has created the events stream
        wait_routed(base)
        wait_http(floor + "/x.gif")

        print(f"load generator: {'wrk' if use_wrk else 'python aiohttp client'}, {CONNECTIONS} connections, {args.duration:.0f}s each; {os.cpu_count()} CPUs", flush=True)
        rss_peak = edge_rss(edge.pid)
        bare_rps = rps(bare + "/pixel/hit.gif", args.duration, use_wrk)
        print(f"  bare aiohttp GIF        {bare_rps:9.0f} req/s", flush=True)
        floor_rps = rps(floor + "/x.gif", args.duration, use_wrk)
        print(f"  floor: aiohttp + nats-py request + JetStream publish, no edge logic {floor_rps:9.0f} req/s   ratio {floor_rps / bare_rps:.2f}", flush=True)
        pixel_rps = rps(base + "/benchpix/hit", args.duration, use_wrk)
        rss_peak = max(rss_peak, edge_rss(edge.pid))
        print(f"  edge pixel (band)       {pixel_rps:9.0f} req/s   ratio {pixel_rps / bare_rps:.2f}  (goal >= 0.5)", flush=True)
        track_rps = rps(base + "/benchtrack/page", args.duration, use_wrk)
        rss_peak = max(rss_peak, edge_rss(edge.pid))
        print(f"  edge /track/page        {track_rps:9.0f} req/s   ratio {track_rps / bare_rps:.2f}  (goal >= 0.3)", flush=True)

        half = track_rps / 2
        result: dict[str, Any] = {}

        async def soak() -> None:
            nonlocal rss_peak, result
            if use_wrk:
                task = asyncio.get_running_loop().run_in_executor(None, wrk_rate, base + "/benchtrack/page", args.soak, half)
            else:
                task = asyncio.get_running_loop().run_in_executor(None, in_child, "rate", base + "/benchtrack/page", args.soak, half)
            while not task.done():
                rss_peak = max(rss_peak, edge_rss(edge.pid))
                await asyncio.sleep(0.5)
            result = await task

        assert nats_server.process is not None
        who = {"edge": edge.pid, "services": svc.pid, "nats-server": nats_server.process.pid}
        cpu_before = {name: cpu_s(pid) for name, pid in who.items()}
        asyncio.run(soak())
        cpu_after = {name: cpu_s(pid) for name, pid in who.items()}
        print(f"  /track/page at ~{result.get('rate', half):.0f} req/s (half of {track_rps:.0f}) for {args.soak:.0f}s: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms (goal <= 10), errors {result['errors']}", flush=True)
        if result.get("requests"):
            per_hit = ", ".join(f"{name} {(cpu_after[name] - cpu_before[name]) / result['requests'] * 1e6:.0f} us" for name in who)
            print(f"  CPU per /track/page hit during that run: {per_hit}", flush=True)
        print(f"  edge RSS peak {rss_peak:.1f} MB (goal < 150)", flush=True)
    finally:
        for proc in reversed(procs):
            processes.stop(proc, 20)
        nats_server.stop()
        shutil.rmtree(store, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
