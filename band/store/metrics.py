"""The store's Prometheus metrics, served on the store's /metrics (``METRICS_PORT``).

Made on first use, once per process, in no registry: the service hands them to band's
per-service registry (``App.collectors``), so importing the store registers nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True)
class StoreMetrics:
    rows: Counter
    skipped: Counter
    retries: Counter
    healthy: Gauge
    batch_seconds: Histogram
    forgotten: Counter


@lru_cache(maxsize=1)
def metrics() -> StoreMetrics:
    return StoreMetrics(
        rows=Counter("band_store_rows", "Rows written by the store, by table (bad_rows included)", ["table"], registry=None),
        skipped=Counter("band_store_skipped", "Redelivered events found already stored and skipped", registry=None),
        retries=Counter("band_store_retries", "Batch writes that failed and are being retried (ClickHouse down or full)",
                        registry=None),
        healthy=Gauge("band_store_healthy", "1 while the store writes, 0 while it retries or failed", registry=None),
        batch_seconds=Histogram("band_store_batch_seconds", "Time to write one batch, from first try to ack", registry=None),
        forgotten=Counter("band_store_forgotten_dropped", "Events of forgotten people dropped by the writer (tombstoned "
                          "uid or user id)", registry=None),
    )


def collectors() -> list[object]:
    m = metrics()
    return [m.rows, m.skipped, m.retries, m.healthy, m.batch_seconds, m.forgotten]


__all__ = [
    "StoreMetrics",
    "collectors",
    "metrics",
]
