"""The NATS micro protocol (ADR-32): ``$SRV.PING|INFO|STATS`` with per-endpoint stats.

Discovery needs nothing else: the edge, ``band ls`` and ``nats micro ls`` all read it;
:func:`collect` is the one way band asks (the edge's discovery and ``band ls`` use it).
Written here instead of using ``nats.micro`` because that one awaits each handler in
the subscription callback (one request at a time per endpoint); band runs requests
concurrently and only borrows the protocol.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.nuid import NUID

from .. import wire

VERBS = ("PING", "INFO", "STATS")


@dataclass
class EndpointStats:
    """One endpoint as ADR-32 lists it, with the counters STATS reports."""

    name: str
    subject: str
    queue_group: str
    metadata: dict[str, str]
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    processing_time: int = 0  # nanoseconds, summed

    def record(self, started_ns: int, error: str | None = None) -> None:
        self.num_requests += 1
        self.processing_time += time.perf_counter_ns() - started_ns
        if error is not None:
            self.num_errors += 1
            self.last_error = error

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "queue_group": self.queue_group, "metadata": self.metadata}

    def stats(self) -> dict[str, Any]:
        average = self.processing_time // self.num_requests if self.num_requests else 0
        return {
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "num_requests": self.num_requests,
            "num_errors": self.num_errors,
            "last_error": self.last_error,
            "processing_time": self.processing_time,
            "average_processing_time": average,
        }


@dataclass
class ServiceIdentity:
    """What PING/INFO/STATS say about one running instance."""

    name: str
    version: str = "0.1.0"
    description: str = ""
    metadata: dict[str, str] = field(default_factory=lambda: {"band": wire.PROTOCOL_VERSION})
    id: str = field(default_factory=lambda: NUID().next().decode())
    endpoints: list[EndpointStats] = field(default_factory=list)
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat())

    def _base(self, kind: str) -> dict[str, Any]:
        return {"type": kind, "name": self.name, "id": self.id, "version": self.version, "metadata": self.metadata}

    def ping(self) -> dict[str, Any]:
        return self._base(wire.MICRO_PING_TYPE)

    def info(self) -> dict[str, Any]:
        return {
            **self._base(wire.MICRO_INFO_TYPE),
            "description": self.description,
            "endpoints": [e.info() for e in self.endpoints],
        }

    def stats(self) -> dict[str, Any]:
        return {
            **self._base(wire.MICRO_STATS_TYPE),
            "started": self.started,
            "endpoints": [e.stats() for e in self.endpoints],
        }


def discovery_subjects(name: str, instance_id: str) -> list[tuple[str, str]]:
    """``(verb, subject)`` for every subject an instance answers, per ADR-32."""
    out = []
    for verb in VERBS:
        root = f"{wire.SRV_PREFIX}.{verb}"
        out += [(verb, root), (verb, f"{root}.{name}"), (verb, f"{root}.{name}.{instance_id}")]
    return out


async def serve_discovery(nc: Client, identity: ServiceIdentity) -> list[Subscription]:
    """Subscribe the discovery subjects (no queue group: every instance answers)."""
    answers = {"PING": identity.ping, "INFO": identity.info, "STATS": identity.stats}
    subs = []
    for verb, subject in discovery_subjects(identity.name, identity.id):
        build = answers[verb]

        async def answer(msg: Msg, build: Any = build) -> None:
            if msg.reply:
                await msg.respond(wire.encode(build()))

        subs.append(await nc.subscribe(subject, cb=answer))
    return subs


async def collect(nc: Client, verb: str, wait: float, service: str | None = None) -> list[dict[str, Any]]:
    """Send ``$SRV.<verb>[.<service>]`` and gather the JSON objects answered within ``wait`` seconds.

    Every instance answers (no queue group), so this waits the whole window; answers
    that are not JSON objects are dropped.
    """
    subject = f"{wire.SRV_PREFIX}.{verb}" + (f".{service}" if service else "")
    inbox = nc.new_inbox()
    answers: list[dict[str, Any]] = []

    async def gather(msg: Msg) -> None:
        try:
            answer = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(answer, dict):
            answers.append(answer)

    sub = await nc.subscribe(inbox, cb=gather)
    try:
        await nc.publish(subject, b"", reply=inbox)
        await asyncio.sleep(wait)
    finally:
        await sub.unsubscribe()
    return answers
