"""A 3-node cluster from deploy/cluster/node.conf on localhost: a replicated events
stream, a band service and a publisher listing all three URLs; the node both are
connected to is killed mid-load. Every publish JetStream acknowledged is in the
stream exactly once, and the service keeps answering RPC (issue 4 "A cluster",
issue 5 "A 3-node cluster with a replicated stream")."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import StreamConfig
from support.deploy import DEPLOY, check_conf, copy_conf, environment, eventually, inbox_of, password_env, url

from band import App, wire
from band._core.rpc import RPC
from band._runtime.stream import StreamLimits, ensure_stream
from band.cli.natsserver import NatsServer
from band.cli.ports import free_port
from band.errors import RPCError
from band.testing import serve

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (DEPLOY / "cluster" / "node.conf").exists(), reason="no cluster conf")]

NODES = ("nats-1", "nats-2", "nats-3")
EVENTS = 2000
KILL_AFTER = 600
INFLIGHT = 64


@pytest.fixture
def env() -> dict[str, str]:
    return password_env()


@pytest.fixture
def cluster(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, NatsServer]]:
    """Three nodes from the deploy file: hostnames become 127.0.0.1 with free ports."""
    ports: set[int] = set()
    while len(ports) < 3 * len(NODES):  # distinct: client, route and monitoring port per node
        ports.add(free_port())
    pool = sorted(ports)
    route_ports = {name: pool.pop() for name in NODES}
    servers: dict[str, NatsServer] = {}
    try:
        for name in NODES:
            root = tmp_path / name
            node_conf = copy_conf(root / "conf", root / "js", ("deploy/cluster/node.conf", "nats.conf"))
            text = node_conf.read_text().replace("listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{route_ports[name]}")
            for other, port in route_ports.items():
                text = text.replace(f"nats-route://{other}:6222", f"nats-route://127.0.0.1:{port}")
            assert not re.search(r"\b6222\b", text.split("# The cluster port")[0]), "a route was not rewritten"
            node_conf.write_text(text)
            server = NatsServer(store_dir=root / "js", config=node_conf, port=pool.pop(), monitor_port=pool.pop(),
                                log_file=root / "nats-server.log")
            with environment({**env, "NATS_SERVER_NAME": name}):
                try:
                    server.start()
                except RuntimeError as exc:
                    raise RuntimeError(f"{exc}\n{(root / 'nats-server.log').read_text()[-2000:]}") from None
            servers[name] = server
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def urls(user: str, env: dict[str, str], servers: list[NatsServer]) -> str:
    return ",".join(url(user, env, s.port) for s in servers)


def test_cluster_node_conf_is_valid(env: dict[str, str]) -> None:
    done = check_conf(DEPLOY / "cluster" / "node.conf", {**env, "NATS_SERVER_NAME": "nats-1"})
    assert done.returncode == 0, done.stderr


async def test_replicated_stream_survives_a_node(cluster: dict[str, NatsServer], env: dict[str, str]) -> None:
    crm = App("crm")

    @crm.expose()
    async def by_phone(phone: str) -> Any:
        return {"phone": phone}

    nodes = list(cluster.values())
    by_port = {s.port: s for s in nodes}
    admin = await nats.connect(urls("admin", env, nodes).split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        ajs = admin.jetstream()

        async def stream_ready() -> bool:  # the JetStream meta leader is elected, R3 placed
            try:
                await ensure_stream(ajs, StreamLimits(replicas=3, storage="file"))
                info = await ajs.stream_info(wire.STREAM)
                return info.cluster is not None and len(info.cluster.replicas or []) == 2
            except Exception:
                return False

        await eventually(stream_ready, timeout=30, what="replicated stream BAND_EVENTS", step=0.25)
        config: StreamConfig = (await ajs.stream_info(wire.STREAM)).config
        assert config.num_replicas == 3

        async with serve(crm, urls("svc_crm", env, nodes)) as service:
            assert service.nc.connected_url is not None
            doomed = by_port[service.nc.connected_url.port]
            # the publisher (the edge's credential) starts on the same node, fails over to the others
            ordered = [doomed] + [s for s in nodes if s is not doomed]
            pub = await nats.connect(urls("edge", env, ordered).split(","), dont_randomize=True, inbox_prefix=inbox_of("edge"),
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2)
            caller = await nats.connect(urls("svc_calltracking", env, [s for s in nodes if s is not doomed]).split(","),
                                        inbox_prefix=inbox_of("svc_calltracking"), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
            try:
                assert pub.connected_url is not None and pub.connected_url.port == doomed.port
                js = pub.jetstream()
                acked: set[str] = set()
                retries: list[int] = []  # publishes that failed during the failover and went again
                killed = asyncio.Event()
                slots = asyncio.Semaphore(INFLIGHT)
                deadline = time.monotonic() + 40

                async def publish(i: int) -> None:
                    mid = f"{6462464730849083392 + i}"
                    body = wire.encode({"key": "in.gen.track.page", "id": mid, "data": {"i": i}})
                    async with slots:
                        while True:  # an unacknowledged publish is retried with the same id
                            try:
                                await js.publish("in.gen.track.page", body, timeout=1.0, headers={wire.MSG_ID_HEADER: mid})
                                break
                            except Exception:
                                retries.append(i)
                                if time.monotonic() > deadline:
                                    return
                                await asyncio.sleep(0.05)
                    acked.add(mid)
                    if len(acked) == KILL_AFTER and not killed.is_set():
                        killed.set()
                        doomed.kill()  # SIGKILL mid-load

                await asyncio.gather(*(publish(i) for i in range(EVENTS)))
                assert killed.is_set()
                assert doomed.process is not None and doomed.process.poll() is not None
                # everything got its ack in the end (retries), and both clients moved
                assert len(acked) == EVENTS, f"{EVENTS - len(acked)} publishes never acknowledged ({len(retries)} retries)"
                print(f"cluster failover: {len(retries)} publish retries, {len(set(retries))} events retried")
                assert pub.connected_url is not None and pub.connected_url.port != doomed.port
                await eventually(lambda: service.nc.is_connected and service.nc.connected_url is not None
                                 and service.nc.connected_url.port != doomed.port, timeout=15, what="service reconnected")

                # the service still answers RPC, through the survivors
                rpc = RPC(lambda: caller)

                async def answers() -> bool:
                    try:
                        return await rpc.request("crm", "by_phone", timeout__=1.0, phone="1") == {"phone": "1"}
                    except RPCError:
                        return False

                await eventually(answers, timeout=15, what="crm answers after the node died", step=0.1)
                for n in range(20):
                    assert await rpc.request("crm", "by_phone", phone=str(n)) == {"phone": str(n)}

                # exactly once: every acked id once, nothing else
                # (read by sequence from the stream leader: no consumer to place while
                # the cluster still counts the dead node as a peer)
                state = (await ajs.stream_info(wire.STREAM)).state
                assert state.messages == EVENTS and state.last_seq - state.first_seq + 1 == EVENTS
                seen: list[str] = []
                for start in range(state.first_seq, state.last_seq + 1, 200):
                    batch = range(start, min(start + 200, state.last_seq + 1))
                    msgs = await asyncio.gather(*(ajs.get_msg(wire.STREAM, seq) for seq in batch))
                    seen += [wire.decode(m.data or b"")["id"] for m in msgs]
                assert len(seen) == len(set(seen)) == EVENTS
                assert set(seen) == acked
            finally:
                with contextlib.suppress(Exception):
                    await pub.close()
                with contextlib.suppress(Exception):
                    await caller.close()
    finally:
        await admin.close()
