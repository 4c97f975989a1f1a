"""A hit's trace at the edge: its spans while tracing is on, else the caller's trace carried.

While tracing is on (:data:`band.tracing.ON`), one server span for the hit (route, key,
status) continues the browser's or front's ``traceparent`` or starts a trace. Under it: the
enrich scatter-gather with one span per enricher service (answered, failed or late), the
handler request, and the JetStream publish (ended by its ack). Each request carries its
span's context in NATS headers, so the services' spans hang under the right step.

While it is off, a hit that arrives with a valid W3C ``traceparent`` still carries it: the
header goes on every NATS request and on the stored event's publish, and the event's
``trace_id`` names the caller's trace, so an upstream trace joins its events at the cost of
a header copy. :func:`open_trace` is the one place a transport opens a hit's trace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from band import tracing, wire
from band.response import ErrorResponse, Response

# W3C trace context: version 00-fe, a trace id and a parent id that are not all zeros, flags
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-(?!0{32})([0-9a-f]{32})-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}\Z")
_MAX_STATE = 512


class CarriedTrace:
    """The caller's trace context, passed along unchanged while tracing is off; the
    pipeline's hooks that would make spans do nothing."""

    __slots__ = ("_headers", "trace_id")

    def __init__(self, headers: dict[str, str], trace_id: str) -> None:
        self._headers = headers
        self.trace_id = trace_id

    def enrich(self, key: str, services: Iterable[str]) -> dict[str, str]:
        return dict(self._headers)

    def enricher(self, service: str, ok: bool) -> None:
        pass

    def enriched(self) -> None:
        pass

    def handle(self, key: str) -> dict[str, str]:
        return dict(self._headers)

    def handled(self, answer: Response) -> None:
        pass

    def publish(self, key: str, headers: dict[str, str]) -> None:
        headers.update(self._headers)

    def published(self, ok: bool) -> None:
        pass

    def end(self, status: int) -> None:
        pass


def carried(headers: Mapping[str, str]) -> CarriedTrace | None:
    """The request's valid ``traceparent`` (and a short ``tracestate``) to pass along, if any."""
    parent = headers.get(wire.TRACEPARENT_HEADER)
    if not parent:
        return None
    found = _TRACEPARENT.match(parent.strip().lower())
    if found is None:
        return None
    kept = {wire.TRACEPARENT_HEADER: found.group(0)}
    state = headers.get(wire.TRACESTATE_HEADER)
    if state and len(state) <= _MAX_STATE and state.isprintable():
        kept[wire.TRACESTATE_HEADER] = state
    return CarriedTrace(kept, found.group(1))


def open_trace(headers: Mapping[str, str], method: str, path: str, message: dict[str, Any]) -> Trace | None:
    """The hit's trace for every transport: spans while tracing is on, else the caller's
    context carried as it came (``trace_id`` on the event either way), else none."""
    if tracing.ON:
        return HitTrace(headers, method, path, message)
    if wire.TRACEPARENT_HEADER not in headers:
        return None
    trace = carried(headers)
    if trace is not None:
        message[wire.TRACE_ID_FIELD] = trace.trace_id
    return trace


class HitTrace:
    """The spans of one hit; the pipeline calls in at each step."""

    __slots__ = ("_enrich", "_enrichers", "_handle", "_publish", "_token", "span", "trace_id")

    def __init__(self, headers: Mapping[str, str], method: str, path: str, message: dict[str, Any]) -> None:
        key = message["key"]
        self.span = tracing.start(
            f"hit {key}", "server", tracing.extract(headers),
            **{"http.request.method": method, "http.route": path, "band.key": key, "band.id": str(message.get("id"))},
        )
        found = tracing.ids(self.span)
        self.trace_id = found[0] if found else ""
        message[wire.TRACE_ID_FIELD] = self.trace_id  # the stored event joins its trace
        self._token = tracing.attach(self.span)  # the edge's log lines during the hit carry its ids
        self._enrich: Any = None
        self._enrichers: dict[str, Any] = {}
        self._handle: Any = None
        self._publish: Any = None

    def _child(self, name: str, kind: str, parent: Any = None, **attributes: Any) -> Any:
        context = tracing.context_of(parent or self.span)
        return tracing.start(name, kind, context, **attributes)

    # --- enrich ---------------------------------------------------------------------
    def enrich(self, key: str, services: Iterable[str]) -> dict[str, str]:
        """Start the enrich span and one per expected service; the headers to send."""
        self._enrich = self._child(f"enrich {key}", "client", **{"band.key": key})
        for service in services:
            self._enrichers[service] = self._child(f"enricher {service}", "internal", self._enrich, **{"band.service": service})
        return tracing.inject({}, self._enrich)

    def enricher(self, service: str, ok: bool) -> None:
        """``service`` answered (``ok``) or answered an error or garbage."""
        span = self._enrichers.pop(service, None)
        if span is not None:
            span.set_attribute("band.outcome", "answered" if ok else "failed")
            if not ok:
                tracing.fail(span, f"{service} answered an error")
            span.end()

    def enriched(self) -> None:
        """The gather is over: services that did not answer are late."""
        for service, span in self._enrichers.items():
            span.set_attribute("band.outcome", "late")
            tracing.fail(span, f"{service} did not answer in time")
            span.end()
        self._enrichers.clear()
        if self._enrich is not None:
            self._enrich.end()

    # --- handle and publish ----------------------------------------------------------
    def handle(self, key: str) -> dict[str, str]:
        self._handle = self._child(f"handle {key}", "client", **{"band.key": key})
        return tracing.inject({}, self._handle)

    def handled(self, answer: Response) -> None:
        if self._handle is None:
            return
        if isinstance(answer, ErrorResponse):
            self._handle.set_attribute("band.status_code", answer.statusCode)
            tracing.fail(self._handle, answer.message or "error")
        self._handle.end()

    def publish(self, key: str, headers: dict[str, str]) -> None:
        """Start the JetStream publish span; its context goes into ``headers``."""
        self._publish = self._child(
            f"publish {key}", "producer", **{"messaging.system": "nats", "messaging.destination.name": key}
        )
        tracing.inject(headers, self._publish)

    def published(self, ok: bool) -> None:
        if self._publish is not None:
            if not ok:
                tracing.fail(self._publish, "JetStream did not acknowledge the event")
            self._publish.end()

    def end(self, status: int) -> None:
        """The answer went out with ``status``."""
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            tracing.fail(self.span, f"answered {status}")
        self.span.end()
        tracing.detach(self._token)


Trace = HitTrace | CarriedTrace  # what the pipeline calls at each step

__all__ = ["CarriedTrace", "HitTrace", "Trace", "carried", "open_trace"]
