"""What the overview shows, sampled every couple of seconds so rates are real.

Each round asks ``$SRV.INFO`` and ``$SRV.STATS`` (every instance answers), reads each
edge's ``/metrics`` and the JetStream state, and keeps a bounded history. A rate is
the difference of two counter readings over the time between them; an instance that
missed two rounds is shown down (and forgotten a minute later), and every up/down
change is kept in a short log.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nats.aio.client import Client

from .. import wire
from ..runtime import collect as gather_micro
from ..runtime import every
from . import charts, edgemetrics, jetstream, reconcile
from .config import PanelConfig

log = logging.getLogger("band.panel")
WINDOW_S = 0.3  # how long one round collects micro answers
DOWN_AFTER = 2  # rounds missed before an instance counts as down
FORGET_S = 60.0  # a down instance stays on the page this long
SPARK_POINTS = 60


@dataclass
class Instance:
    service: str
    id: str
    version: str = ""
    started: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # endpoint name -> last STATS row
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen_round: int = 0
    seen_at: float = 0.0
    previous_at: float = 0.0
    down_since: float | None = None


@dataclass
class EdgeState:
    url: str
    up: bool = False
    error: str = ""
    totals: edgemetrics.EdgeTotals | None = None
    at: float = 0.0
    rates: dict[str, Any] = field(default_factory=dict)


class Sampler:
    """Run :meth:`run` in a task; read :meth:`overview` and the histories at any time."""

    def __init__(self, nc: Client, config: PanelConfig, http: aiohttp.ClientSession) -> None:
        self._nc = nc
        self._config = config
        self._http = http
        self.round = 0
        self.instances: dict[tuple[str, str], Instance] = {}
        self.changes: deque[dict[str, Any]] = deque(maxlen=100)
        self.endpoint_rates: dict[tuple[str, str], deque[float]] = {}
        self.edges = [EdgeState(url.rstrip("/")) for url in config.edge_urls]
        self.edge_history: deque[tuple[float, dict[str, float], dict[str, float]]] = deque(maxlen=config.history)
        self.jetstream: dict[str, Any] = {"stream": None, "consumers": [], "dead_letters": 0, "message": "not sampled yet"}
        self.reconcile: dict[str, Any] = {"notes": ["not sampled yet"]}
        self.ready = asyncio.Event()

    # --- one round ------------------------------------------------------------------
    async def sample(self) -> None:
        self.round += 1
        infos, stats = await asyncio.gather(gather_micro(self._nc, "INFO", WINDOW_S), gather_micro(self._nc, "STATS", WINDOW_S))
        now = time.time()
        for info in infos:
            inst = self._instance(info, now)
            if inst is not None:
                inst.info = info
        for row in stats:
            inst = self._instance(row, now)
            if inst is not None:
                inst.previous, inst.previous_at = inst.stats, inst.seen_at
                inst.stats = {e.get("name", "?"): e for e in row.get("endpoints") or [] if isinstance(e, dict)}
                inst.started = str(row.get("started") or inst.started)
                inst.seen_at = now
        self._expire(now)
        self._rates()
        await asyncio.gather(*(self._read_edge(edge) for edge in self.edges), self._read_reconcile())
        self._edge_history(now)
        try:
            self.jetstream = await jetstream.state(self._nc.jetstream())
        except Exception as exc:  # noqa: BLE001 - JetStream off, or a timeout: say so, keep sampling
            self.jetstream = {"stream": None, "consumers": [], "dead_letters": 0, "message": f"JetStream: {type(exc).__name__}: {exc}"}

    def _instance(self, row: dict[str, Any], now: float) -> Instance | None:
        name, iid = row.get("name"), row.get("id")
        if not isinstance(name, str) or not isinstance(iid, str):
            return None
        inst = self.instances.get((name, iid))
        if inst is None:
            inst = self.instances[(name, iid)] = Instance(name, iid)
            self.changes.appendleft({"time": now, "service": name, "instance": iid, "change": "up"})
        elif inst.down_since is not None:
            inst.down_since = None
            self.changes.appendleft({"time": now, "service": name, "instance": iid, "change": "up"})
        inst.version = str(row.get("version") or inst.version)
        inst.seen_round = self.round
        return inst

    def _expire(self, now: float) -> None:
        for ident, inst in list(self.instances.items()):
            if self.round - inst.seen_round >= DOWN_AFTER and inst.down_since is None:
                inst.down_since = now
                self.changes.appendleft({"time": now, "service": inst.service, "instance": inst.id, "change": "down"})
            if inst.down_since is not None and now - inst.down_since > FORGET_S:
                del self.instances[ident]

    def _rates(self) -> None:
        totals: dict[tuple[str, str], float] = {}
        for inst in self.instances.values():
            for name in set(inst.stats) | set(self._endpoint_names(inst)):
                totals.setdefault((inst.service, name), 0.0)
                if inst.down_since is None and inst.seen_round == self.round:
                    totals[(inst.service, name)] += _rate(inst, name)["rate"]
        for key, value in totals.items():
            self.endpoint_rates.setdefault(key, deque(maxlen=SPARK_POINTS)).append(value)
        for key in list(self.endpoint_rates):
            if key not in totals:
                del self.endpoint_rates[key]

    @staticmethod
    def _endpoint_names(inst: Instance) -> list[str]:
        return [e.get("name", "?") for e in inst.info.get("endpoints") or [] if isinstance(e, dict)]

    async def _read_edge(self, edge: EdgeState) -> None:
        try:
            async with self._http.get(edge.url + "/metrics", timeout=aiohttp.ClientTimeout(total=1.5)) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise ValueError(f"/metrics answered {resp.status}")
            totals = edgemetrics.parse(text)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            edge.up, edge.error = False, f"{type(exc).__name__}: {exc}".rstrip(": ")
            return
        now = time.monotonic()
        edge.rates = edgemetrics.rates(totals, edge.totals, now - edge.at) if edge.totals is not None else edgemetrics.rates(totals, totals, 1.0)
        edge.totals, edge.at, edge.up, edge.error = totals, now, True, ""

    async def _read_reconcile(self) -> None:
        try:
            self.reconcile = await reconcile.read(self._nc, self._http, [e.url for e in self.edges], self._config.store_service)
        except Exception as exc:  # noqa: BLE001 - NATS away: say so, keep sampling
            self.reconcile = {"notes": [f"reconciliation: {type(exc).__name__}: {exc}"]}

    def _edge_history(self, now: float) -> None:
        statuses: dict[str, float] = {}
        timeouts: dict[str, float] = {}
        for edge in self.edges:
            if not edge.up:
                continue
            for status, rate in (edge.rates.get("hits_per_s") or {}).items():
                statuses[status] = statuses.get(status, 0.0) + rate
            for svc, rate in (edge.rates.get("enricher_timeouts_per_s") or {}).items():
                timeouts[svc] = timeouts.get(svc, 0.0) + rate
        self.edge_history.append((now, statuses, timeouts))

    async def run(self) -> None:
        """Sample until cancelled; one failed round is logged and the next one tries again
        (:func:`band.runtime.every`: a cancel swallowed inside a round still ends it, so the
        panel's shutdown never waits for this loop)."""
        await every(self._config.interval_s, self._round, lambda exc: log.error("panel: sampling failed", exc_info=exc),
                    started=self.ready)

    async def _round(self) -> None:
        if self._nc.is_connected:
            await self.sample()

    # --- what the pages read ----------------------------------------------------------
    def services(self) -> list[dict[str, Any]]:
        """Every service seen lately: instances, endpoints with metadata, rates and a sparkline."""
        now = time.time()
        by_name: dict[str, list[Instance]] = {}
        for inst in self.instances.values():
            by_name.setdefault(inst.service, []).append(inst)
        out = []
        for name in sorted(by_name):
            instances = sorted(by_name[name], key=lambda i: i.id)
            alive = [i for i in instances if i.down_since is None]
            endpoints: dict[str, dict[str, Any]] = {}
            for inst in instances:
                for ep in inst.info.get("endpoints") or []:
                    if isinstance(ep, dict):
                        endpoints.setdefault(ep.get("name", "?"), _describe(ep))
                for ep_name in inst.stats:
                    endpoints.setdefault(ep_name, {"name": ep_name, "subject": inst.stats[ep_name].get("subject", ""), "role": ""})
            for ep_name, ep in endpoints.items():
                rows = [_rate(i, ep_name) for i in alive]
                ep["rate"] = sum(r["rate"] for r in rows)
                ep["error_rate"] = sum(r["error_rate"] for r in rows)
                ep["requests"] = sum(int(i.stats.get(ep_name, {}).get("num_requests", 0)) for i in alive)
                ep["errors"] = sum(int(i.stats.get(ep_name, {}).get("num_errors", 0)) for i in alive)
                latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
                ep["latency_ms"] = sum(latencies) / len(latencies) if latencies else None
                ep["last_error"] = next((i.stats.get(ep_name, {}).get("last_error") for i in alive if i.stats.get(ep_name, {}).get("last_error")), "")
                history = list(self.endpoint_rates.get((name, ep_name), []))
                ep["spark"] = charts.sparkline(history, stroke="#e15759" if ep["error_rate"] else "#4e79a7")
            roles = sorted({ep.get("role") or "" for ep in endpoints.values()} - {""})
            out.append({
                "name": name,
                "status": "up" if alive else "down",
                "version": (alive or instances)[0].version,
                "roles": roles,
                "instances": [
                    {"id": i.id, "version": i.version, "started": i.started, "uptime_s": _uptime(i.started, now),
                     "status": "down" if i.down_since is not None else "up", "last_seen_s": round(now - i.seen_at, 1) if i.seen_at else None}
                    for i in instances
                ],
                "endpoints": sorted(endpoints.values(), key=lambda e: (e.get("role", ""), e["name"])),
                "rate": sum(ep["rate"] for ep in endpoints.values()),
                "error_rate": sum(ep["error_rate"] for ep in endpoints.values()),
            })
        return out

    def edge(self) -> list[dict[str, Any]]:
        return [{"url": e.url, "up": e.up, "error": e.error, **e.rates} for e in self.edges]

    def enricher_services(self) -> list[str]:
        """Services with an enricher endpoint: their answers sit at ``data.<service>`` in events."""
        return sorted({i.service for i in self.instances.values() for ep in i.info.get("endpoints") or []
                       if isinstance(ep, dict) and (ep.get("metadata") or {}).get(wire.MD_ROLE) == wire.ROLE_ENRICHER})

    def overview(self) -> dict[str, Any]:
        return {
            "time": time.time(),
            "interval_s": self._config.interval_s,
            "services": self.services(),
            "changes": list(self.changes)[:30],
            "edge": self.edge(),
            "jetstream": self.jetstream,
            "reconcile": self.reconcile,
            "enrichers": self.enricher_services(),
        }


def _describe(ep: dict[str, Any]) -> dict[str, Any]:
    md = ep.get("metadata") or {}
    if not isinstance(md, dict):
        md = {}
    return {
        "name": ep.get("name", "?"),
        "subject": ep.get("subject", ""),
        "role": md.get(wire.MD_ROLE, ""),
        "method": md.get(wire.MD_METHOD, ""),
        "key": md.get(wire.MD_KEY, ""),
        "keys": wire.metadata_list(md, wire.MD_KEYS),
        "path": md.get(wire.MD_PATH, ""),
        "timeout_ms": md.get(wire.MD_TIMEOUT, ""),
        "durable": md.get(wire.MD_DURABLE) == "true",
    }


def _rate(inst: Instance, name: str) -> dict[str, Any]:
    """Requests and errors per second and mean latency of one endpoint since the last round."""
    new, old = inst.stats.get(name), inst.previous.get(name)
    if not new or not old or inst.seen_at <= inst.previous_at:
        return {"rate": 0.0, "error_rate": 0.0, "latency_ms": None}
    seconds = inst.seen_at - inst.previous_at
    requests = int(new.get("num_requests", 0)) - int(old.get("num_requests", 0))
    errors = int(new.get("num_errors", 0)) - int(old.get("num_errors", 0))
    spent = int(new.get("processing_time", 0)) - int(old.get("processing_time", 0))
    if requests < 0:  # the instance's counters were reset
        return {"rate": 0.0, "error_rate": 0.0, "latency_ms": None}
    return {"rate": requests / seconds, "error_rate": max(errors, 0) / seconds, "latency_ms": spent / requests / 1e6 if requests else None}


def _uptime(started: str, now: float) -> float | None:
    try:
        return round(now - _dt.datetime.fromisoformat(started).timestamp(), 1)
    except ValueError:
        return None


__all__ = ["Sampler"]
