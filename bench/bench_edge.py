"""Edge CPU per hit against bare aiohttp serving the same GIF, in one run.

Not a test: run it by hand and read the CPU figures and ratios.

    .venv/bin/python bench/bench_edge.py                       # defaults below
    .venv/bin/python bench/bench_edge.py --rate 400 --duration 10 --soak 30

The headline figures are **CPU microseconds per hit of each process** (user + system
time from /proc/<pid>/stat, before and after, minus what the process burns idle),
measured at a fixed request rate well below saturation (an open-loop load generator in
its own process). CPU per hit does not depend on how busy the machine is or how many
cores the load generator takes; requests per second do, so they are printed only for
orientation.

Scenarios:
  bare    aiohttp answering the 43-byte GIF (the yardstick), at --rate
  pixel   GET /pixel/hit.gif through the edge: the built-in answer, stored in JetStream
  track   GET /benchtrack/page: two enricher services (benchgeo, benchua), a handler
          service (benchtrack) and a durable listener service (benchstore), JetStream
  floor   raw nats-py: a process answering b"{}" to requests at --rate, nothing else;
          what any process woken by one NATS message per hit costs on this machine; and
          bare aiohttp storing each hit with one raw nats-py JetStream publish: the pixel
          hit with no edge logic at all
  then    throughput at saturation (closed loop, 32 connections) for pixel and track,
          and /track/page at half that rate for --soak seconds: p50/p99 and the edge's RSS
Targets: pixel (edge + nats-server) <= 2.5 x bare aiohttp's CPU per request;
track, all processes together, <= 300 us per hit.

    .venv/bin/python bench/bench_edge.py --bots                # the bot stage alone (under a minute)

--bots measures only the edge's bot classification (broker/bots.py): its cost per hit in
process (a person's browser, a crawler, every user agent new), then the pixel hit's CPU per
hit of an edge classifying every hit beside one with EDGE_BOT_DETECTION=0, both loaded
with a browser's User-Agent and Referer (a person's hit: the whole check runs).

    .venv/bin/python bench/bench_edge.py --schemas             # the schema stage alone (under a minute)

--schemas measures the edge's schema check (band/schemas.py) the same way: in process (a key
without a schema, a valid purchase, an invalid one with every error listed), then the pixel
hit's CPU per hit of an edge with a schema on the key (every hit valid, so the whole check runs
and the hit is stored as usual) beside one with no schema.

    .venv/bin/python bench/bench_edge.py --privacy             # the IP policy and consent alone (about a minute)

--privacy measures the edge's IP policy (broker/privacy.py) and consent checks (broker/consent.py)
the same way: in process (a hit made without and with the consent rules, td.ip truncated and
hashed), then the pixel hit's CPU per hit of three edges: `keep` + `implied` (no address
rewritten, the consent check finds nothing to do), the default `truncate` + `implied`, and
`hash` + `required` (every hit cookieless: its uid and its address hashed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
BROWSER = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
           "Referer": "https://shop.example.com/product/boots?utm_source=google"}
SERVICES = ("benchgeo", "benchua", "benchtrack", "benchstore")


# --- the processes under test -------------------------------------------------------
def bare_server(port: int) -> None:
    from aiohttp import web

    from band.response import PIXEL_GIF

    async def gif(request: web.Request) -> web.Response:
        return web.Response(body=PIXEL_GIF, content_type="image/gif")

    app = web.Application()
    app.router.add_get("/{tail:.*}", gif)
    run_app(app, port)


def run_app(app: Any, port: int) -> None:
    """Serve a bare aiohttp app on the loop the edge runs on."""
    from aiohttp import web

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def service(nats_url: str, name: str) -> None:
    """One bench service in its own process, on its own connection (as `band run` would)."""
    from typing import Any as _Any

    from band import App, response
    from band._runtime import loop as band_loop
    from band.testing import serve

    app = App(name)
    if name == "benchtrack":

        @app.expose.handler()
        async def page(data: dict[str, _Any], **_: _Any) -> _Any:
            return response.data({"ok": True})

    elif name == "benchstore":

        @app.expose.listener(keys=["in.gen.benchtrack"], durable=True, deliver="new")
        async def store(**_: _Any) -> None:
            return None

    elif name == "benchgeo":

        @app.expose.enricher(props={"ip": "td.ip"}, keys=["in.gen.benchtrack"])
        async def locate(ip: str, **_: _Any) -> _Any:
            return {"country": "NL"}

    elif name == "benchua":

        @app.expose.enricher(props={"agent": "td.ua"}, keys=["in.gen.benchtrack"])
        async def parse(agent: str, **_: _Any) -> _Any:
            return {"os": "Linux"}

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with serve(app, nats_url):
            print("ready", flush=True)
            await stop.wait()

    band_loop.run(main())  # the loop `band run` picks


RAW_SUBJECT = "bench.raw"
STORED_SUBJECT = "in.gen.benchraw.hit"  # in the events stream: JetStream acknowledges it


def bare_js_server(port: int, nats_url: str) -> None:
    """The floor of an edge: bare aiohttp that stores each hit with one raw nats-py
    JetStream publish (a request on the stream's subject) before it answers the GIF."""
    import itertools

    import nats
    from aiohttp import web

    from band.response import PIXEL_GIF

    ids = itertools.count()
    body = json.dumps({"key": STORED_SUBJECT, "service": "benchraw", "name": "hit", "channel": "pixel", "projectId": 0,
                       "uid": "0", "td": {"ip": "127.0.0.1", "ua": "", "ref": "", "host": ""}, "data": {}}).encode()

    async def connect(app: web.Application) -> Any:
        app["nc"] = await nats.connect(nats_url)
        yield
        await app["nc"].close()

    async def gif(request: web.Request) -> web.Response:
        await request.app["nc"].request(STORED_SUBJECT, body, timeout=5, headers={"Nats-Msg-Id": f"raw-{os.getpid()}-{next(ids)}"})
        return web.Response(body=PIXEL_GIF, content_type="image/gif")

    app = web.Application()
    app.cleanup_ctx.append(connect)
    app.router.add_get("/{tail:.*}", gif)
    run_app(app, port)


def raw_responder(nats_url: str) -> None:
    """The floor of a service: raw nats-py answering ``{}`` to every request, nothing else."""
    import nats

    from band._runtime import loop as band_loop

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        nc = await nats.connect(nats_url)

        async def answer(msg: Any) -> None:
            await msg.respond(b"{}")

        await nc.subscribe(RAW_SUBJECT, cb=answer)
        await nc.flush()
        print("ready", flush=True)
        await stop.wait()
        await nc.close()

    band_loop.run(main())


async def _in_waves(one: Any, total: int) -> None:
    """``one(i)`` for every i < total, at most 500 scheduled at a time (each waits for its own start)."""
    tasks = []
    for i in range(total):
        tasks.append(asyncio.ensure_future(one(i)))
        if len(tasks) >= 500:
            await asyncio.gather(*tasks)
            tasks.clear()
    await asyncio.gather(*tasks)


async def _nats_open_loop(url: str, duration: float, rate: float) -> dict[str, Any]:
    """Requests to the raw responder at a fixed rate (as _open_loop, over NATS)."""
    import nats

    total, interval, errors = int(duration * rate), 1.0 / rate, 0
    nc = await nats.connect(url)
    start = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal errors
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await nc.request(RAW_SUBJECT, b"{}", timeout=5)
        except Exception:
            errors += 1

    await _in_waves(one, total)
    elapsed = time.perf_counter() - start
    await nc.close()
    return {"rate": total / elapsed, "requests": total, "errors": errors}


# --- load (in its own process, so it never shares a loop with what it measures) -------------
async def _closed_loop(url: str, duration: float) -> dict[str, Any]:
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
    return {"rate": done / duration, "requests": done, "errors": errors}


async def _open_loop(url: str, duration: float, rate: float, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Requests at a fixed rate over up to 32 connections; latency from the scheduled start."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    total = int(duration * rate)
    interval = 1.0 / rate
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS), headers=headers) as session:
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

        await _in_waves(one, total)
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rate": total / elapsed,
        "requests": total,
        "errors": errors,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def load_child(kind: str, url: str, duration: float, rate: float, out: str) -> None:
    try:
        import uvloop

        uvloop.install()  # a cheaper generator leaves more of the machine to what it measures
    except ImportError:
        pass
    work = (_closed_loop(url, duration) if kind == "closed" else _nats_open_loop(url, duration, rate) if kind == "nats"
            else _open_loop(url, duration, rate, BROWSER if kind == "browser" else None))
    result = asyncio.run(work)
    Path(out).write_text(json.dumps(result))


def load(kind: str, url: str, duration: float, rate: float = 0.0) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_edge as b;"
    code += f" b.load_child({kind!r}, {url!r}, {duration!r}, {rate!r}, {out!r})"
    subprocess.run([sys.executable, "-c", code], check=True)
    result: dict[str, Any] = json.loads(Path(out).read_text())
    os.unlink(out)
    return result


# --- CPU and memory from /proc ------------------------------------------------------------
def cpu_split(pid: int) -> tuple[float, float, int]:
    """(user s, system s, context switches) of a process and its children so far; the
    switches are every thread's voluntary + involuntary ones (a wakeup is about one each)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    user, system, switches = int(fields[11]) / ticks, int(fields[12]) / ticks, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for row in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in row:
                    switches += int(row.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for kid in (int(c) for c in children.read_text().split()) if children.exists() else ():
        if Path(f"/proc/{kid}").exists():
            u, s, w = cpu_split(kid)
            user, system, switches = user + u, system + s, switches + w
    return user, system, switches


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far."""
    user, system, _ = cpu_split(pid)
    return user + system


def rss_mb(pid: int) -> float:
    """RSS of a process plus its children (the edge's workers with --workers N)."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1]) / 1024
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(c) for c in children.read_text().split()] if children.exists() else []
    return total + sum(rss_mb(k) for k in kids if Path(f"/proc/{k}").exists())


Split = tuple[float, float, float]  # per hit: user µs, system µs, context switches


class Meter:
    """CPU per hit of named processes: (CPU during a run - idle CPU for as long) / hits."""

    def __init__(self, pids: dict[str, int], idle_s: float) -> None:
        self.pids = pids
        before, started = self.sample(), time.perf_counter()
        time.sleep(idle_s)
        after, elapsed = self.sample(), time.perf_counter() - started
        # per second, idle: user s, system s, switches
        self.idle = {name: tuple((a - b) / elapsed for a, b in zip(after[name], before[name], strict=True)) for name in pids}
        self.splits: dict[str, Split] = {}  # of the last median: user/system/switches per hit

    def sample(self) -> dict[str, tuple[float, float, int]]:
        return {name: cpu_split(pid) for name, pid in self.pids.items()}

    def median(
        self, rounds: int, url: str, rate: float, duration: float, names: tuple[str, ...], kind: str = "open"
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """The median of ``rounds`` runs, process by process (one noisy round does not count)."""
        runs = [self.run(url, rate, duration, names, kind) for _ in range(rounds)]
        mid = len(runs) // 2
        per_hit = {n: sorted(r[0][n] for r in runs)[mid] for n in names}
        self.splits = {n: tuple(sorted(r[2][n][i] for r in runs)[mid] for i in range(3)) for n in names}  # type: ignore[misc]
        return per_hit, {"rate": sum(r[1]["rate"] for r in runs) / rounds, "errors": sum(r[1]["errors"] for r in runs)}

    def run(
        self, url: str, rate: float, duration: float, names: tuple[str, ...], kind: str = "open"
    ) -> tuple[dict[str, float], dict[str, Any], dict[str, Split]]:
        """µs per hit of each process in ``names`` while ``url`` gets ``rate`` hits/s."""
        before, started = self.sample(), time.perf_counter()
        result = load(kind, url, duration, rate)
        after, elapsed = self.sample(), time.perf_counter() - started
        hits = max(result["requests"], 1)
        split: dict[str, Split] = {}
        for n in names:
            user, system, switches = (max(after[n][i] - before[n][i] - self.idle[n][i] * elapsed, 0.0) / hits for i in range(3))
            split[n] = (user * 1e6, system * 1e6, switches)
        per_hit = {n: split[n][0] + split[n][1] for n in names}
        return per_hit, result, split


def split_line(splits: dict[str, Split]) -> str:
    """User/system µs and context switches per hit, process by process (where the CPU goes)."""
    return "    user/sys us, switches per hit: " + ", ".join(f"{n} {u:.0f}/{s:.0f} {w:.1f}" for n, (u, s, w) in splits.items())


# --- plumbing ----------------------------------------------------------------------------
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
    """Until the edge routes the bench handler and both enrichers answer."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/benchtrack/page", timeout=5) as resp:
            if json.loads(resp.read()) == {"ok": True}:
                break
        time.sleep(0.2)
    else:
        raise TimeoutError("bench services not routed")
    time.sleep(2 * 1.5)  # a discovery refresh or two: every enricher in the snapshot


def spawn(code: str, **popen: Any) -> subprocess.Popen[bytes]:
    here = str(Path(__file__).parent)
    return subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r}); import bench_edge as b; {code}"], **popen)


def line(label: str, per_hit: dict[str, float]) -> str:
    parts = " + ".join(f"{name} {us:.0f}" for name, us in per_hit.items())
    return f"  {label:<34} {sum(per_hit.values()):6.0f} us/hit = {parts}"


def bot_stage(rounds: int = 200_000) -> dict[str, float]:
    """The classifier's cost per hit in this process, in microseconds: a person's browser
    (user agent cached, referrer and burst checked), a crawler (cached), and a stream of user
    agents never seen before (the worst case: each one matched against the whole list)."""
    from broker.bots import Bots
    from broker.config import EdgeConfig

    config = EdgeConfig()
    bots = Bots.configured(config.bots, config.spam_referrers_file, config.burst_hits)
    person = {"td": {"ua": BROWSER["User-Agent"], "ref": BROWSER["Referer"]}, "uid": "6462464730849083392",
              "data": {"page": {"ref": "https://www.google.com/search?q=boots"}, "sess": {"refhost": "www.google.com"}}}  # as the web SDK sends
    crawler = {"td": {"ua": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "ref": ""}, "uid": "6462464730849083393"}
    fresh = [{"td": {"ua": f"{BROWSER['User-Agent']} build/{n}", "ref": ""}, "uid": str(6462464730849083400 + n)} for n in range(2000)]
    out = {}
    for label, messages, n in (("person", [person], rounds), ("crawler", [crawler], rounds), ("new user agent", fresh, len(fresh))):
        bots.classify(messages[0])  # compiled and cached once, as on an edge's first hit
        started = time.perf_counter()
        for i in range(n):
            bots.classify(messages[i % len(messages)])
        out[label] = (time.perf_counter() - started) / n * 1e6
    return out


def schema_stage(rounds: int = 200_000) -> dict[str, float]:
    """The schema check's cost per hit in this process, in microseconds: a key without a
    schema (one dict look-up), a valid purchase, an invalid one (every error with its path)."""
    from band import schemas

    folder = Path(tempfile.mkdtemp(prefix="bench-schemas-"))
    try:
        (folder / "in.gen.track.purchase.yml").write_text(PURCHASE_SCHEMA)
        found = schemas.load(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    event = {"key": "in.gen.track.purchase", "service": "track", "name": "purchase", "uid": "6462464730849083392",
             "td": {"ip": "127.0.0.1", "ua": BROWSER["User-Agent"]}, "id": "6462464730849083393", "time": 1540771658623,
             "data": {"revenue": 12.5, "currency": "EUR", "page": {"url": "https://shop.example.com/cart", "title": "Cart"}}}
    page = {**event, "key": "in.gen.track.page"}
    bad = {**event, "data": {"revenue": "12", "currency": "euro"}}
    out = {}
    for label, message in (("no schema on the key", page), ("valid", event), ("invalid, every error", bad)):
        started = time.perf_counter()
        for _ in range(rounds):
            found.check(message)
        out[label] = (time.perf_counter() - started) / rounds * 1e6
    return out


def privacy_stage(rounds: int = 50_000) -> dict[str, float]:
    """The IP policy's and consent's cost per hit in this process, in microseconds: a hit's
    message made without the consent rules and with them (implied, required), td.ip truncated
    and hashed."""
    from broker.consent import Consent
    from broker.hit import Parts, make_hit
    from broker.privacy import DailyKey, IpPolicy

    key = DailyKey("bench")
    implied, required = Consent("implied", key), Consent("required", key)
    td = {"ip": "109.252.93.158", "ua": BROWSER["User-Agent"], "ref": BROWSER["Referer"], "host": "shop.example.com"}

    def parts() -> Parts:
        return Parts(channel="pixel", service="pixel", name="hit", query={"x": "1"}, payload={}, cookie="6462464730849083392",
                     td=td, headers=BROWSER)

    def timed(work: Any) -> float:
        """The best of 5 repeats (a shared machine only ever adds time)."""
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            work()
            best = min(best, (time.perf_counter() - started) / rounds * 1e6)
        return best

    out: dict[str, float] = {}
    for label, consent in (("make_hit, no consent rules", None), ("make_hit, implied", implied), ("make_hit, required (cookieless)", required)):
        out[label] = timed(lambda consent=consent: [make_hit(parts(), {}, consent) for _ in range(rounds)])
    for policy in ("truncate", "hash"):
        ip_policy = IpPolicy(policy, {}, key)
        message = {"projectId": 0, "td": td}

        def apply(ip_policy: IpPolicy = ip_policy, message: dict[str, Any] = message) -> None:
            for _ in range(rounds):
                message["td"] = td
                ip_policy.apply(message)

        out[f"td.ip {policy}"] = timed(apply)
    return out


def privacy_only(args: argparse.Namespace) -> int:
    """``--privacy``: the IP policy and consent in process, then three edges (pixel hits)."""
    stage = privacy_stage()
    print("IP policy and consent in process, us per hit: " + ", ".join(f"{k} {v:.2f}" for k, v in stage.items()), flush=True)
    keep, truncate, cookieless = compare_edges(args, {
        "edge, keep + implied": {"EDGE_IP_POLICY": "keep", "EDGE_CONSENT": "implied"},
        "edge, truncate + implied (default)": {"EDGE_IP_POLICY": "truncate", "EDGE_CONSENT": "implied"},
        "edge, hash + required (cookieless)": {"EDGE_IP_POLICY": "hash", "EDGE_CONSENT": "required"}})
    print(f"    truncate + implied: {truncate - keep:+.0f} us per hit, ratio {truncate / keep:.3f}; "
          f"hash + required: {cookieless - keep:+.0f} us per hit, ratio {cookieless / keep:.3f} "
          f"(noise of a few us on a busy machine); in process "
          f"{stage['make_hit, implied'] - stage['make_hit, no consent rules'] + stage['td.ip truncate']:.2f} / "
          f"{stage['make_hit, required (cookieless)'] - stage['make_hit, no consent rules'] + stage['td.ip hash']:.2f} us", flush=True)
    return 0


PURCHASE_SCHEMA = (Path(__file__).resolve().parents[1] / "examples" / "schemas" / "in.gen.track.purchase.yml").read_text()
# every pixel hit passes it: the whole check runs and the hit is stored as usual
PIXEL_SCHEMA = """\
mode: enforce
type: object
required: [uid, td, data]
properties:
  uid: {type: string, pattern: "^[0-9]+$"}
  td: {type: object, required: [ip, ua], properties: {ip: {type: string}, ua: {type: string, minLength: 1}}}
  data: {type: object}
"""


def bots_only(args: argparse.Namespace) -> int:
    """``--bots``: the bot stage in process, then an edge with and without it (pixel hits)."""
    stage = bot_stage()
    print("bot classification in process, us per hit: " + ", ".join(f"{k} {v:.2f}" for k, v in stage.items()), flush=True)
    on, off = compare_edges(args, {"edge, bots classified": {"EDGE_BOT_DETECTION": "1"},
                                   "edge, EDGE_BOT_DETECTION=0": {"EDGE_BOT_DETECTION": "0"}})
    print(f"    the bot stage: {on - off:+.0f} us per hit end to end (noise of a few us on a busy machine); "
          f"in process {stage['person']:.2f} us", flush=True)
    return 0


def schemas_only(args: argparse.Namespace) -> int:
    """``--schemas``: the schema stage in process, then an edge with a schema on the key and one without."""
    stage = schema_stage()
    print("schema check in process, us per hit: " + ", ".join(f"{k} {v:.2f}" for k, v in stage.items()), flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-schemas-"))
    try:
        (folder / "with").mkdir()
        (folder / "with" / "in.gen.pixel.hit.yml").write_text(PIXEL_SCHEMA)
        on, off = compare_edges(args, {"edge, a schema on the key": {"EDGE_SCHEMAS_DIR": str(folder / "with")},
                                       "edge, no schema": {"EDGE_SCHEMAS_DIR": str(folder / "none")}})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"    the schema stage: {on - off:+.0f} us per hit end to end (noise of a few us on a busy machine); "
          f"in process {stage['valid']:.2f} us", flush=True)
    return 0


def compare_edges(args: argparse.Namespace, edges: dict[str, dict[str, str]]) -> tuple[float, ...]:
    """Pixel hits (a browser's User-Agent and Referer) on edges differing only by ``edges``'
    environment, in turn; the median edge CPU per hit of each, printed and returned in order."""
    from band.cli.natsserver import NatsServer
    from band.cli.ports import free_port

    procs: list[subprocess.Popen[bytes]] = []
    store = Path(tempfile.mkdtemp(prefix="bench-js-"))
    nats_server = NatsServer(store_dir=store).start()
    try:
        ports = {label: free_port() for label in edges}
        for label, port in ports.items():
            env = {**os.environ, "EDGE_STREAM_STORAGE": "file", **edges[label]}
            procs.append(subprocess.Popen([sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(port), "--nats", nats_server.url,
                                           "--log-level", "WARNING"], cwd=ROOT, env=env))
        for port in ports.values():
            wait_http(f"http://127.0.0.1:{port}/health")
        assert nats_server.process is not None
        meter = Meter({label: proc.pid for label, proc in zip(ports, procs, strict=False)}, idle_s=2.0)
        print(f"pixel hits with a browser's User-Agent and Referer at {args.rate:.0f} hits/s, median of {args.rounds} runs of {args.duration:.0f} s "
              f"(the edges in turn, so the machine's load falls on both); edge CPU per hit, idle subtracted; {os.cpu_count()} CPUs", flush=True)
        runs: dict[str, list[float]] = {label: [] for label in ports}
        for _ in range(args.rounds):
            for label, port in ports.items():
                per_hit, _r, _split = meter.run(f"http://127.0.0.1:{port}/pixel/hit.gif", args.rate, args.duration, (label,), kind="browser")
                runs[label].append(per_hit[label])
        for label, values in runs.items():
            print(f"  {label:<34} {sorted(values)[len(values) // 2]:6.0f} us/hit   (runs: {', '.join(f'{v:.0f}' for v in values)})", flush=True)
        return tuple(sorted(v)[len(v) // 2] for v in runs.values())
    finally:
        _teardown(procs, nats_server, store)


def _teardown(procs: list[Any], nats_server: Any, store: Path) -> None:
    """Stop what a bench started, last started first; remove its data."""
    from band.cli import processes

    for proc in reversed(procs):
        processes.stop(proc, 20)
    nats_server.stop()
    shutil.rmtree(store, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=400.0, help="hits/s of the CPU-per-hit runs (well below saturation)")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per CPU-per-hit run and per saturation run")
    parser.add_argument("--rounds", type=int, default=3, help="CPU-per-hit runs per scenario; the median of each process is printed")
    parser.add_argument("--soak", type=float, default=20.0, help="seconds of the half-load p99/RSS run (0 skips it and saturation)")
    parser.add_argument(
        "--profile", metavar="DIR", help="after the CPU runs, py-spy record the edge and a service during each scenario into DIR (pip install py-spy)"
    )
    parser.add_argument("--workers", type=int, default=1, help="edge worker processes (SO_REUSEPORT)")
    parser.add_argument("--bots", action="store_true", help="only the bot stage: in process, then an edge with and without it")
    parser.add_argument("--schemas", action="store_true", help="only the schema stage: in process, then an edge with a schema on the key and without")
    parser.add_argument("--privacy", action="store_true", help="only the IP policy and consent: in process, then three edges")
    args = parser.parse_args()
    if args.privacy:
        return privacy_only(args)
    if args.bots:
        return bots_only(args)
    if args.schemas:
        return schemas_only(args)

    from band.cli.natsserver import NatsServer
    from band.cli.ports import free_port

    procs: list[subprocess.Popen[bytes]] = []
    store = Path(tempfile.mkdtemp(prefix="bench-js-"))
    nats_server = NatsServer(store_dir=store).start()
    try:
        bare_port, edge_port = free_port(), free_port()
        procs.append(bare := spawn(f"b.bare_server({bare_port})"))
        env = {**os.environ, "EDGE_STREAM_STORAGE": "file"}
        edge = subprocess.Popen([sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(edge_port), "--nats", nats_server.url,
                                 "--log-level", "WARNING", "--workers", str(args.workers)], cwd=ROOT, env=env)
        procs.append(edge)
        bare_url, base = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{edge_port}"
        wait_http(base + "/health")  # the edge has created the events stream (the durable listener needs it)
        svc: dict[str, subprocess.Popen[bytes]] = {}
        for name in SERVICES:
            svc[name] = spawn(f"b.service({nats_server.url!r}, {name!r})", stdout=subprocess.PIPE)
            procs.append(svc[name])
        procs.append(raw := spawn(f"b.raw_responder({nats_server.url!r})", stdout=subprocess.PIPE))
        procs.append(bare_js := spawn(f"b.bare_js_server({(bare_js_port := free_port())}, {nats_server.url!r})"))
        for name, proc in {**svc, "raw": raw}.items():
            assert proc.stdout is not None
            for out in proc.stdout:  # the services log to stdout too
                if out.strip() == b"ready":
                    break
            else:
                raise RuntimeError(f"bench service {name} did not start")
        wait_http(bare_url + "/x.gif")
        wait_http(f"http://127.0.0.1:{bare_js_port}/x.gif")
        wait_routed(base)

        assert nats_server.process is not None
        pids = {
            "bare": bare.pid,
            "edge": edge.pid,
            "nats-server": nats_server.process.pid,
            **{n: p.pid for n, p in svc.items()},
            "raw responder": raw.pid,
            "bare+js": bare_js.pid,
        }
        meter = Meter(pids, idle_s=3.0)
        print(
            f"CPU per hit at {args.rate:.0f} hits/s, median of {args.rounds} runs of {args.duration:.0f} s, open loop;"
            f" idle CPU subtracted; {os.cpu_count()} CPUs",
            flush=True,
        )
        bare_cpu, r = meter.median(args.rounds, bare_url + "/pixel/hit.gif", args.rate, args.duration, ("bare",))
        print(line("bare aiohttp GIF", bare_cpu) + f"   ({r['rate']:.0f}/s, {r['errors']} errors)", flush=True)
        print(split_line(meter.splits), flush=True)
        pixel_cpu, r = meter.median(args.rounds, base + "/pixel/hit.gif", args.rate, args.duration, ("edge", "nats-server"))
        ratio = sum(pixel_cpu.values()) / max(sum(bare_cpu.values()), 1e-9)
        print(line("pixel, built-in + JetStream", pixel_cpu) + f"   ({r['rate']:.0f}/s, {r['errors']} errors)", flush=True)
        print(split_line(meter.splits), flush=True)
        print(f"    ratio to bare aiohttp {ratio:.2f} (target <= 2.5)", flush=True)
        track_cpu, r = meter.median(args.rounds, base + "/benchtrack/page", args.rate, args.duration, ("edge", "nats-server", *SERVICES))
        print(line("/track/page, 2 enrichers+handler+durable listener", track_cpu) + f"   ({r['rate']:.0f}/s, {r['errors']} errors)", flush=True)
        print(split_line(meter.splits), flush=True)
        print(f"    all processes {sum(track_cpu.values()):.0f} us per hit (target <= 300), {sum(track_cpu.values()) / 300:.2f} of the target", flush=True)
        floor, r = meter.median(args.rounds, nats_server.url, args.rate, args.duration, ("raw responder", "nats-server"), kind="nats")
        print(line("floor: raw nats-py request/reply", floor) + f"   ({r['rate']:.0f}/s, {r['errors']} errors)", flush=True)
        print(split_line(meter.splits), flush=True)
        stored, r = meter.median(args.rounds, f"http://127.0.0.1:{bare_js_port}/pixel/hit.gif", args.rate, args.duration, ("bare+js", "nats-server"))
        print(line("floor: bare aiohttp + raw JS publish", stored) + f"   ({r['rate']:.0f}/s, {r['errors']} errors)", flush=True)
        print(split_line(meter.splits), flush=True)
        print(
            f"    ratio to bare aiohttp {sum(stored.values()) / max(sum(bare_cpu.values()), 1e-9):.2f} (a pixel hit stored with no edge logic at all)",
            flush=True,
        )

        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            for label, url, who in (("pixel", base + "/pixel/hit.gif", ("edge",)), ("track", base + "/benchtrack/page", ("edge", "benchgeo", "nats-server"))):
                spies = [subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pids[n]), "-d", str(int(args.duration)),
                                           "-r", "250", "--nonblocking", "-f", "raw", "-o", str(Path(args.profile) / f"{label}-{n}.txt")]
                                          + (["--native"] if n == "nats-server" else []), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for n in who if n != "nats-server"]
                load("open", url, args.duration, args.rate)
                for spy in spies:
                    spy.wait(60)
            print(f"  py-spy profiles (raw, collapsed stacks) in {args.profile}", flush=True)

        if args.soak > 0:
            print(f"throughput at saturation ({CONNECTIONS} connections, closed loop; depends on the machine's load):", flush=True)
            bare_rps = load("closed", bare_url + "/pixel/hit.gif", args.duration)["rate"]
            pixel_rps = load("closed", base + "/pixel/hit.gif", args.duration)["rate"]
            track = load("closed", base + "/benchtrack/page", args.duration)
            print(
                f"  bare {bare_rps:.0f}/s, pixel {pixel_rps:.0f}/s ({pixel_rps / bare_rps:.2f}),"
                f" /track/page {track['rate']:.0f}/s ({track['rate'] / bare_rps:.2f}), {track['errors']} errors",
                flush=True,
            )
            half = track["rate"] / 2
            rss_peak = [rss_mb(edge.pid)]

            async def soak() -> dict[str, Any]:
                task = asyncio.get_running_loop().run_in_executor(None, load, "open", base + "/benchtrack/page", args.soak, half)
                while not task.done():
                    rss_peak[0] = max(rss_peak[0], rss_mb(edge.pid))
                    await asyncio.sleep(0.5)
                return await task

            result = asyncio.run(soak())
            print(
                f"  /track/page at {half:.0f}/s (half of saturation) for {args.soak:.0f} s:"
                f" p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, {result['errors']} errors; edge RSS peak {rss_peak[0]:.1f} MB",
                flush=True,
            )
    finally:
        _teardown(procs, nats_server, store)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
