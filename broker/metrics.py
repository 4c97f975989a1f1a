"""Prometheus metrics of one edge, in their own registry.

A per-app :class:`~prometheus_client.CollectorRegistry` (not the global one) lets
several edges live in one process, as the tests run them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

STAGES = ("enrich", "handle", "publish", "total")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The edge's counters and histograms; children are cached so a hit costs little."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("band_edge_requests", "HTTP answers by status code", ["status"], registry=r)
        self.stage = Histogram("band_edge_stage_seconds", "Latency of each pipeline stage", ["stage"], buckets=_BUCKETS, registry=r)
        self.enricher_timeouts = Counter("band_edge_enricher_timeouts", "Enricher services that missed the deadline", ["service"], registry=r)
        self.enricher_errors = Counter("band_edge_enricher_errors", "Enricher services that answered an error or garbage", ["service"], registry=r)
        self.handler_errors = Counter("band_edge_handler_errors", "Handler failures by kind", ["kind"], registry=r)
        self.publish_errors = Counter("band_edge_publish_errors", "Events JetStream did not acknowledge", registry=r)
        self.ws_sockets = Gauge("band_edge_websockets", "Open WebSocket connections", registry=r)
        self._status: dict[int, Counter] = {}
        self._stage = {s: self.stage.labels(s) for s in STAGES}

    def answered(self, status: int) -> None:
        child = self._status.get(status)
        if child is None:
            child = self._status[status] = self.requests.labels(str(status))
        child.inc()

    def observe(self, stage: str, seconds: float) -> None:
        self._stage[stage].observe(seconds)

    def handler_error(self, kind: str) -> None:
        self.handler_errors.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["Metrics", "STAGES"]
