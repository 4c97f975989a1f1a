"""The edge's ``/metrics`` (Prometheus text) read into totals, and rates between two reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class EdgeTotals:
    """Counters of one edge at one moment (monotonic until the edge restarts)."""

    statuses: dict[str, float] = field(default_factory=dict)
    stage_count: dict[str, float] = field(default_factory=dict)
    stage_sum: dict[str, float] = field(default_factory=dict)
    stage_buckets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (le, cumulative)
    enricher_timeouts: dict[str, float] = field(default_factory=dict)
    enricher_errors: dict[str, float] = field(default_factory=dict)
    publish_errors: float = 0.0
    unenriched: float = 0.0
    websockets: float = 0.0
    bots: dict[str, dict[str, float]] = field(default_factory=dict)  # reason -> action -> hits


def parse(text: str) -> EdgeTotals:
    """Totals from the edge's exposition text; families the edge does not have are empty."""
    totals = EdgeTotals()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "band_edge_requests_total":
                totals.statuses[labels.get("status", "?")] = value
            elif name == "band_edge_stage_seconds_bucket":
                le = labels.get("le", "+Inf")
                totals.stage_buckets.setdefault(labels.get("stage", "?"), []).append((float("inf") if le == "+Inf" else float(le), value))
            elif name == "band_edge_stage_seconds_count":
                totals.stage_count[labels.get("stage", "?")] = value
            elif name == "band_edge_stage_seconds_sum":
                totals.stage_sum[labels.get("stage", "?")] = value
            elif name == "band_edge_enricher_timeouts_total":
                totals.enricher_timeouts[labels.get("service", "?")] = value
            elif name == "band_edge_enricher_errors_total":
                totals.enricher_errors[labels.get("service", "?")] = value
            elif name == "band_edge_publish_errors_total":
                totals.publish_errors = value
            elif name == "band_edge_unenriched_total":
                totals.unenriched = value
            elif name == "band_edge_bots_total":
                totals.bots.setdefault(labels.get("reason", "?"), {})[labels.get("action", "?")] = value
            elif name == "band_edge_websockets":
                totals.websockets = value
    return totals


def _delta(new: dict[str, float], old: dict[str, float]) -> dict[str, float]:
    """Per-label increase; a counter that went down means the edge restarted (count from 0)."""
    out = {}
    for label, value in new.items():
        before = old.get(label, 0.0)
        out[label] = value - before if value >= before else value
    return out


def rates(new: EdgeTotals, old: EdgeTotals | None, seconds: float) -> dict[str, object]:
    """Hits per second by status, stage latencies (mean and p95) and enricher timeouts per
    second over the interval between two reads."""
    base = old or EdgeTotals()
    seconds = max(seconds, 1e-6)
    statuses = {s: d / seconds for s, d in sorted(_delta(new.statuses, base.statuses).items())}
    counts = _delta(new.stage_count, base.stage_count)
    sums = _delta(new.stage_sum, base.stage_sum)
    stages: dict[str, dict[str, float | None]] = {}
    for stage, count in counts.items():
        mean = sums.get(stage, 0.0) / count * 1000 if count else None
        stages[stage] = {"mean_ms": mean, "p95_ms": _p95(new.stage_buckets.get(stage, []), base.stage_buckets.get(stage, []), count)}
    return {
        "hits_per_s": statuses,
        "total_per_s": sum(statuses.values()),
        "stages": stages,
        "enricher_timeouts_per_s": {s: d / seconds for s, d in _delta(new.enricher_timeouts, base.enricher_timeouts).items()},
        "enricher_timeouts": dict(new.enricher_timeouts),
        "enricher_errors": dict(new.enricher_errors),
        "publish_errors": new.publish_errors,
        "unenriched": new.unenriched,
        "websockets": new.websockets,
        "bots": {reason: dict(actions) for reason, actions in sorted(new.bots.items())},
    }


def _p95(new: list[tuple[float, float]], old: list[tuple[float, float]], count: float) -> float | None:
    """The upper bound (ms) of the bucket holding the 95th percentile of the interval."""
    if count <= 0:
        return None
    before = dict(old)
    for le, cumulative in sorted(new):
        if cumulative - before.get(le, 0.0) >= 0.95 * count:
            return None if le == float("inf") else le * 1000
    return None


__all__ = ["EdgeTotals", "parse", "rates"]
