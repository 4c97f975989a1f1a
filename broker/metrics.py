"""Prometheus metrics of one edge, in their own registry.

A per-app :class:`~prometheus_client.CollectorRegistry` (not the global one) lets
several edges live in one process, as the tests run them. The per-hit numbers
(answers by status, stage latencies) are plain counters the hot path bumps without a
lock (one event loop owns them); a custom collector hands them to prometheus-client
at scrape time, which renders them. Rare events use prometheus-client's own metrics.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .minutes import MinuteCounts

STAGES = ("enrich", "handle", "publish", "total")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Histogram:
    """Bucket counts (non-cumulative) and the sum of one stage."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0


class _HotCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        answers = CounterMetricFamily("band_edge_requests", "HTTP answers by status code", labels=["status"])
        for status, count in sorted(self._m.status_counts.items()):
            answers.add_metric([str(status)], count)
        yield answers
        bots = CounterMetricFamily("band_edge_bots", "Hits classified as bots, by reason and what was done (flag, drop, keep)", labels=["reason", "action"])
        for (reason, action), count in sorted(self._m.bot_counts.items()):
            bots.add_metric([reason, action], count)
        yield bots
        stages = HistogramMetricFamily("band_edge_stage_seconds", "Latency of each pipeline stage", labels=["stage"])
        for stage, hist in self._m.stages.items():
            running, buckets = 0, []
            for bound, count in zip((*(str(b) for b in BUCKETS), "+Inf"), hist.counts, strict=True):
                running += count
                buckets.append((bound, running))
            stages.add_metric([stage], buckets, hist.total)
        yield stages
        events = CounterMetricFamily("band_edge_events", "Hits answered 2xx, and events published to the stream "
                                     "(per minute and key: /metrics/minutes)", labels=["outcome"])
        events.add_metric(["answered"], self._m.minutes.answered)
        events.add_metric(["published"], self._m.minutes.published)
        yield events


class Metrics:
    """The edge's counters and histograms."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.status_counts: dict[int, int] = {}
        self.stages = {s: _Histogram() for s in STAGES}
        self.minutes = MinuteCounts()
        self.bot_counts: dict[tuple[str, str], int] = {}
        r.register(_HotCollector(self))
        ProcessCollector(registry=r)  # CPU, memory, open files of the edge process
        self.enricher_timeouts = Counter("band_edge_enricher_timeouts", "Enricher services that missed the deadline", ["service"], registry=r)
        self.enricher_errors = Counter("band_edge_enricher_errors", "Enricher services that answered an error or garbage", ["service"], registry=r)
        self.handler_errors = Counter("band_edge_handler_errors", "Handler failures by kind", ["kind"], registry=r)
        self.publish_errors = Counter("band_edge_publish_errors", "Events JetStream did not acknowledge", registry=r)
        self.unenriched = Counter("band_edge_unenriched", "Hits sent on with no enricher service known for their key "
                                  "(none registered yet, or none declared): stored without enrichment", registry=r)
        self.schema_failures = Counter("band_edge_schema_failures", "Events that failed their key's schema, by schema "
                                       "and mode (warn: stored with the errors; enforce: kept in failed_events)",
                                       ["schema", "mode"], registry=r)
        self.ws_sockets = Gauge("band_edge_websockets", "Open WebSocket connections", registry=r)

    def answered(self, status: int) -> None:
        counts = self.status_counts
        counts[status] = counts.get(status, 0) + 1

    def hit(self, service: object, name: object, status: int, published: bool) -> None:
        """One hit's outcome in the per-minute, per-key counts (:mod:`broker.minutes`)."""
        self.minutes.count(f"{service}/{name}", 200 <= status < 300, published)

    def bot(self, reason: str, action: str) -> None:
        counts = self.bot_counts
        counts[reason, action] = counts.get((reason, action), 0) + 1

    def schema_failed(self, schema: str, mode: str) -> None:
        self.schema_failures.labels(schema, mode).inc()

    def observe(self, stage: str, seconds: float) -> None:
        hist = self.stages[stage]
        hist.counts[bisect_left(BUCKETS, seconds)] += 1
        hist.total += seconds

    def handler_error(self, kind: str) -> None:
        self.handler_errors.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["BUCKETS", "STAGES", "Metrics"]
