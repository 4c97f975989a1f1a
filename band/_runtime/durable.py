"""Durable listeners: a JetStream pull consumer per function, acked after it returns.

Pulls are sized by the free slots of the service's in-flight gate: the consumer
reserves slots, asks the server for at most that many events in one pull request it
holds open for ``FETCH_WAIT_S``, starts each event in its own slot as it arrives, and
pulls again once the request is used up or has expired. A slow event holds its own
slot, never a batch. One open request instead of a fetch per event: each event then
costs its delivery and its ack, not two pull requests and a "no messages" reply too
(nats-py's ``fetch`` probes with ``no_wait`` before it waits).

A failed call is nak'ed with a growing delay and, at its ``max_deliver``-th try,
moved to ``band.dlq.<service>`` and terminated. A call is cut at the service's
``call_timeout``; while it runs, the consumer tells the server it is still in
progress every third of ``ack_wait``, so a live, slow call is not redelivered to a
second consumer. ``ack_wait`` is what it says in the docs: how long the server waits
for a dead process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError, ServerError

from .. import tracing, wire
from .._core.app import App
from .._core.registry import Endpoint
from ..errors import ConfigError
from .cancel import raise_if_cancelling
from .dispatch import Dispatch, describe, quiet
from .limits import Gate
from .pull import PullRequests
from .stream import await_stream

FETCH_WAIT_S = 0.5  # how long one pull request waits on the server for events
PULL_GRACE_S = 1.0  # a pull whose end never came (a reconnect lost it) is given up this much later
MOST_PER_PULL = 64


def _filters(subjects: list[str]) -> dict[str, Any]:
    """One filter as ``filter_subject`` (nats-server 2.9 knows no other), several as a list."""
    return {"filter_subject": subjects[0]} if len(subjects) == 1 else {"filter_subjects": subjects}


def consumer_config(service: str, ep: Endpoint, slots: int) -> ConsumerConfig:
    """The pull consumer of ``service``'s durable listener ``ep`` with ``slots`` in-flight
    calls: what the listener creates, and what ``band provision`` creates for it."""
    return ConsumerConfig(
        durable_name=wire.durable_name(service, ep.method),
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ep.ack_wait_s,
        max_deliver=ep.max_deliver + 1,  # our own loop dead-letters at max_deliver
        deliver_policy=DeliverPolicy.NEW if ep.deliver == "new" else DeliverPolicy.ALL,
        **_filters([wire.prefix_subject("", p) for p in ep.keys] or [wire.EVENTS_SUBJECTS]),
        max_ack_pending=slots * 4,
    )


class DurableListener:
    """One durable listener's consumer; :meth:`run` until ``stopping`` is set."""

    def __init__(self, app: App, nc: Client, ep: Endpoint, dispatch: Dispatch, gate: Gate) -> None:
        self.app = app
        self.nc = nc
        self.ep = ep
        self.dispatch = dispatch
        self.gate = gate
        self.name = wire.durable_name(app.name, ep.method)
        self._pulls = PullRequests(nc, self.name, self._on_delivery)  # each event of a pull has a reserved slot
        # in work, by its ack subject (unique per delivery) -> (msg, when it last said so to the server)
        self._working: dict[str, tuple[Msg, float]] = {}

    async def create(self) -> None:
        """Create (or update) the consumer and subscribe the inbox its events come to."""
        await self.make_consumer()
        await self._pulls.start()

    async def make_consumer(self) -> None:
        """Create the durable consumer, or update it to this listener's settings; where the
        credential may not create consumers (provisioned by the operator: ``band provision``),
        use the one that exists.

        A consumer that already has this listener's settings is used as it is: under the
        shipped nats.conf a service may not create consumers, and asking anyway would cost
        a permissions violation and a request timeout at every start."""
        js = self.nc.jetstream()
        want = consumer_config(self.app.name, self.ep, self.gate.size)
        if await self._exists_as(js, want):
            return
        try:
            await js.add_consumer(wire.STREAM, want)
        except (BadRequestError, ServerError) as exc:  # e.g. a deliver policy changed since it was made
            raise ConfigError(f"cannot create durable consumer {self.name!r}: {exc.description}") from None
        except NatsTimeout:  # nats-server drops a request the user may not send: no answer
            await self._use_provisioned(js, want)

    async def _exists_as(self, js: Any, want: ConsumerConfig) -> bool:
        """The consumer exists, pulls, and has every setting ``want`` sets."""
        try:
            have = (await js.consumer_info(wire.STREAM, self.name)).config
        except (NatsTimeout, NotFoundError):  # none yet, or no INFO grant: creating will tell
            return False
        return have.deliver_subject is None and _differences(want, have) == []

    async def _use_provisioned(self, js: Any, want: ConsumerConfig) -> None:
        try:
            info = await js.consumer_info(wire.STREAM, self.name)
        except (NatsTimeout, NotFoundError):
            raise ConfigError(f"no answer creating durable consumer {self.name!r}, and none provisioned: provision it "
                              f"with the operator's credential (band provision SERVICE_DIR), or grant this user "
                              f"{wire.JS_API}.CONSUMER.DURABLE.CREATE.{wire.STREAM}.{self.name} and the rest of a "
                              "durable listener's lines (docs/operating.md, Adding a service)") from None
        if info.config.deliver_subject:
            raise ConfigError(f"durable consumer {self.name!r} pushes to {info.config.deliver_subject!r}: band pulls; "
                              "provision it again with band provision") from None
        if differs := _differences(want, info.config):
            self.app.logger.warning("durable listener: the provisioned consumer's settings differ from this listener's; "
                                    "run band provision for this service again", consumer=self.name, settings=differs)
        else:
            self.app.logger.info("durable listener: using the consumer the operator provisioned", consumer=self.name)

    async def run(self, stopping: asyncio.Event) -> None:
        """Pull and start events while slots are free; stop pulling once ``stopping`` is set.

        A pull is never cancelled half-way by us: a pull request the server still holds
        after we left would take events to a dead inbox until their ack_wait. So the
        last one is waited out (at most ``FETCH_WAIT_S``), its events started; unless
        the connection is down, when no server holds it and there is nothing to wait for.
        """
        async with asyncio.TaskGroup() as group:
            beat = group.create_task(self._keep_in_progress())
            try:
                while not stopping.is_set():
                    await self._pull_once(stopping)
                    raise_if_cancelling()  # a cancel a step swallowed still ends the loop
            finally:
                beat.cancel()
                await self._pulls.close(drain=self.nc.is_connected)  # events the last pull brought are started first

    async def _pull_once(self, stopping: asyncio.Event) -> None:
        """One pull request for as many events as there are free slots, until it ends."""
        slots = await self.gate.reserve(MOST_PER_PULL)
        asked = False
        try:
            if stopping.is_set():
                return
            try:
                ended = await self._pulls.pull(slots, FETCH_WAIT_S)
                asked = True
                status = await self._pull_end(ended, stopping)
                if status not in ("", wire.PULL_EXPIRED_STATUS):  # 409 consumer deleted, 503 no JetStream...
                    raise ConnectionError(f"pull answered with status {status}")
            except Exception as exc:  # noqa: BLE001 - connection or consumer trouble: back off, the client reconnects
                self.app.logger.warning("durable pull failed; retrying", method=self.ep.method, error=describe(exc))
                with contextlib.suppress(TimeoutError):  # back off, but not past a stop
                    async with asyncio.timeout(1.0):
                        await stopping.wait()
        finally:
            self._pulls.give_up()  # what it still brings comes late, each reserving a slot of its own
            self.gate.give_back(self._pulls.owed if asked else slots)

    async def _pull_end(self, ended: asyncio.Future[str], stopping: asyncio.Event) -> str:
        """How the current pull ended (``""`` when its end never came within the grace).

        A stop while the connection is down ends the wait at once: the request is still
        in the client's buffer or died with the server that held it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FETCH_WAIT_S + PULL_GRACE_S
        stop = asyncio.ensure_future(stopping.wait())
        try:
            either: list[asyncio.Future[Any]] = [ended, stop]
            await asyncio.wait(either, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED)
            if not ended.done() and stop.done() and self.nc.is_connected:  # a live pull is waited out
                await asyncio.wait([ended], timeout=max(0.0, deadline - loop.time()))
            return ended.result() if ended.done() else ""
        finally:
            stop.cancel()

    async def _on_delivery(self, msg: Msg, late: bool) -> None:
        """An event: started in the slot its pull reserved, or, come late from a pull given
        up for lost, once a slot is free."""
        if late:
            await self.gate.reserve()
        self.gate.start(tracing.delivery(msg, self._one(msg)) if tracing.ON else self._one(msg))

    async def _keep_in_progress(self) -> None:
        """Every third of ack_wait, tell the server the events still in work are alive."""
        period = self.ep.ack_wait_s / 3
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for ack, (msg, said) in list(self._working.items()):
                if now - said >= period and ack in self._working:
                    self._working[ack] = (msg, now)
                    await quiet(msg.in_progress())

    async def _one(self, msg: Msg) -> None:
        ep = self.ep
        attempt = msg.metadata.num_delivered
        if self.dispatch.metrics is not None:
            self.dispatch.metrics.delivered(ep.method, attempt)
        message = self.dispatch.decode(msg)
        if message is None:
            await self._dead_letter(msg, "event is not a JSON object")
            return
        self._working[msg.reply] = (msg, asyncio.get_running_loop().time())
        try:
            error = await self.dispatch.listen(ep, msg.subject, message, attempt__=attempt)
        finally:
            self._working.pop(msg.reply, None)
        if error is None:
            await quiet(msg.ack())
        elif attempt >= ep.max_deliver:
            await self._dead_letter(msg, error)
        else:
            await quiet(msg.nak(delay=min(0.2 * 2 ** (attempt - 1), 30.0)))

    async def _dead_letter(self, msg: Msg, error: str) -> None:
        headers = {
            **wire.error_headers(500, error),
            wire.SERVICE_HEADER: self.app.name,
            wire.DLQ_SUBJECT_HEADER: msg.subject,
            wire.DLQ_METHOD_HEADER: self.ep.method,
        }
        try:
            await self.nc.publish(wire.dlq_subject(self.app.name), msg.data, headers=headers)
            await msg.term()
            if self.dispatch.metrics is not None:
                self.dispatch.metrics.dead_lettered(self.ep.method)
            self.app.logger.error("event moved to the dead-letter subject", method=self.ep.method, key=msg.subject, error=error)
        except Exception:
            self.app.logger.exception("dead-lettering failed; the event will be redelivered", method=self.ep.method)


def _differences(want: ConsumerConfig, have: ConsumerConfig) -> list[str]:
    """The settings ``want`` sets that ``have`` does not have (the server fills in the rest)."""
    return [f.name for f in dataclasses.fields(want)
            if getattr(want, f.name) is not None and getattr(have, f.name) != getattr(want, f.name)]


async def durable_listeners(app: App, nc: Client, dispatch: Dispatch, gate: Gate) -> list[DurableListener]:
    """A created consumer for every durable listener of ``app`` (once the stream exists)."""
    eps = [ep for ep in app.registry.by_role("listener") if ep.durable]
    if not eps:
        return []
    await await_stream(nc.jetstream(), app.logger)
    out = []
    for ep in eps:
        listener = DurableListener(app, nc, ep, dispatch, gate)
        await listener.create()
        out.append(listener)
    return out


__all__ = ["FETCH_WAIT_S", "DurableListener", "consumer_config", "durable_listeners"]
