"""The spans of one hit at the edge, made only while tracing is on (:data:`band.tracing.ON`).

One server span for the hit (route, key, status) continues the browser's or front's
``traceparent`` or starts a trace. Under it: the enrich scatter-gather with one span per
enricher service (answered, failed or late), the handler request, and the JetStream
publish (ended by its ack). Each request carries its span's context in NATS headers, so
the services' spans hang under the right step.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from band import tracing, wire
from band.response import ErrorResponse, Response


class HitTrace:
    """The spans of one hit; the pipeline calls in at each step."""

    __slots__ = ("span", "trace_id", "_enrich", "_enrichers", "_handle", "_publish", "_token")

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


__all__ = ["HitTrace"]
