"""The live registry: which handlers, enrichers and custom paths exist right now.

It polls ``$SRV.INFO`` (ADR-32) every couple of seconds and keeps what answered in
the last few polls, so a new service is routed within seconds and a stopped one
stops costing the enrich deadline within seconds. Only handler and enricher
endpoints are used; listener and rpc endpoints are never routed from HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client

from band import wire
from band.runtime import collect, every

log = logging.getLogger("broker.discovery")


@dataclass(frozen=True)
class HandlerRoute:
    """One handler as the edge routes to it."""

    service: str  # the micro service that registered it
    key: str  # in.gen.<svc>.<name> or in.gen.<alias>.*
    timeout_s: float
    path: str = ""


@dataclass(frozen=True)
class PathRoute:
    """A custom path such as ``/x/:id`` and the handler key it leads to."""

    parts: tuple[str, ...]  # literal segments, or ":name" for a parameter
    key: str

    def match(self, segments: list[str]) -> dict[str, str] | None:
        if len(segments) != len(self.parts):
            return None
        params: dict[str, str] = {}
        for part, seg in zip(self.parts, segments, strict=True):
            if part.startswith(":"):
                params[part[1:]] = seg
            elif part != seg:
                return None
        return params


@dataclass
class Instance:
    service: str
    id: str
    endpoints: list[dict[str, Any]]
    seen_poll: int
    speaks_props: bool = True  # revision 2+: reads props-only enrich requests


@dataclass
class Snapshot:
    """Routing tables built from the instances alive now (rebuilt on change only)."""

    handlers: dict[str, HandlerRoute] = field(default_factory=dict)  # exact key -> route
    wildcards: dict[str, HandlerRoute] = field(default_factory=dict)  # service alias -> route
    enrichers: list[tuple[str, str]] = field(default_factory=list)  # (key prefix, service)
    paths: list[PathRoute] = field(default_factory=list)
    # (key prefix, dot-paths it reads (None = the whole message), service), one per enricher endpoint
    enricher_props: list[tuple[str, tuple[str, ...] | None, str]] = field(default_factory=list)
    # (key prefix, service) of enricher endpoints declared with bots=False: not asked for a bot's hit
    skip_bots: frozenset[tuple[str, str]] = frozenset()
    services: frozenset[str] = frozenset()  # every service with an instance alive (``/health`` lists them)
    _enrich_cache: dict[tuple[str, bool], tuple[frozenset[str], tuple[str, ...] | None]] = field(default_factory=dict)

    def handler(self, key: str) -> HandlerRoute | None:
        """The handler of ``key``: a specific key wins over a wildcard."""
        route = self.handlers.get(key)
        if route is not None:
            return route
        parts = key.split(".")
        return self.wildcards.get(parts[2]) if len(parts) == 4 else None

    def enricher_services(self, key: str) -> frozenset[str]:
        """Distinct services with an enricher matching ``key`` (each answers once)."""
        return self.enrich_plan(key)[0]

    def enrich_plan(self, key: str, bot: bool = False) -> tuple[frozenset[str], tuple[str, ...] | None]:
        """Who enriches ``key`` and the dot-paths to send them (``None``: the whole message,
        because some matching enricher declares no props or reads revision 1 only); for a
        bot's hit (``bot``), only the enrichers that want bots."""
        cached = self._enrich_cache.get((key, bot))
        if cached is None:
            skip = self.skip_bots if bot else frozenset()
            services = frozenset(svc for prefix, svc in self.enrichers
                                 if (not prefix or wire.key_matches(prefix, key)) and (prefix, svc) not in skip)
            paths: set[str] | None = set()
            for prefix, props, svc in self.enricher_props:
                if (prefix and not wire.key_matches(prefix, key)) or (prefix, svc) in skip:
                    continue
                if props is None or paths is None:
                    paths = None
                else:
                    paths.update(props)
            cached = (services, tuple(sorted(paths)) if paths is not None else None)
            if len(self._enrich_cache) > 10_000:
                self._enrich_cache.clear()
            self._enrich_cache[key, bot] = cached
        return cached

    def path_route(self, segments: list[str]) -> tuple[PathRoute, dict[str, str]] | None:
        for route in self.paths:
            params = route.match(segments)
            if params is not None:
                return route, params
        return None


def _timeout_s(md: dict[str, str], default_ms: int) -> float:
    try:
        ms = float(md.get(wire.MD_TIMEOUT) or default_ms)
    except ValueError:
        ms = default_ms
    return max(ms, 1.0) / 1000


def _prop_paths(md: dict[str, str]) -> tuple[str, ...] | None:
    """The dot-paths an enricher endpoint reads, or ``None`` when it declares none."""
    try:
        props = json.loads(md.get(wire.MD_PROPS) or "{}")
    except ValueError:
        return None
    if not isinstance(props, dict) or not props or not all(isinstance(v, str) for v in props.values()):
        return None
    return tuple(sorted(set(props.values())))


def build_snapshot(instances: list[Instance], default_timeout_ms: int) -> Snapshot:
    """Routing tables from ADR-32 info responses (malformed endpoints are skipped)."""
    snap = Snapshot()
    enrichers: set[tuple[str, str]] = set()
    props: set[tuple[str, tuple[str, ...] | None, str]] = set()
    want_bots: set[tuple[str, str]] = set()
    for inst in sorted(instances, key=lambda i: (i.service, i.id)):
        for ep in inst.endpoints:
            md = ep.get("metadata") or {}
            if not isinstance(md, dict):
                continue
            role = md.get(wire.MD_ROLE)
            if role == wire.ROLE_HANDLER:
                key = md.get(wire.MD_KEY) or ""
                parts = key.split(".")
                if len(parts) != 4 or f"{parts[0]}.{parts[1]}" != wire.KEY_PREFIX or not wire.is_token(parts[2]):
                    continue
                route = HandlerRoute(inst.service, key, _timeout_s(md, default_timeout_ms), md.get(wire.MD_PATH) or "")
                if parts[3] == "*":
                    snap.wildcards.setdefault(parts[2], route)
                elif wire.is_token(parts[3]):
                    snap.handlers.setdefault(key, route)
                    if route.path and route.path.startswith("/"):
                        segs = tuple(s for s in route.path.split("/") if s)
                        if segs and not any(p.startswith(":") and not wire.is_token(p[1:]) for p in segs):
                            snap.paths.append(PathRoute(segs, key))
            elif role == wire.ROLE_ENRICHER:
                prefixes = wire.metadata_list(md, wire.MD_KEYS)
                paths = _prop_paths(md) if inst.speaks_props else None
                bots = md.get(wire.MD_BOTS) != "false"  # before revision 3: every hit
                for prefix in prefixes or [""]:
                    enrichers.add((prefix, inst.service))
                    props.add((prefix, paths, inst.service))
                    if bots:
                        want_bots.add((prefix, inst.service))
    snap.services = frozenset(inst.service for inst in instances)
    snap.enrichers = sorted(enrichers)
    snap.enricher_props = sorted(props, key=repr)
    snap.skip_bots = frozenset(enrichers - want_bots)  # a service skips bots only if none of its endpoints for the prefix wants them
    # more literal segments first, so /x/new wins over /x/:id
    snap.paths.sort(key=lambda r: (-len(r.parts), sum(p.startswith(":") for p in r.parts)))
    return snap


class Discovery:
    """Keeps :attr:`snapshot` current by polling ``$SRV.INFO``; start with :meth:`run`."""

    def __init__(
        self, nc: Client, *, interval_s: float = 1.5, window_s: float = 0.25, keep_polls: int = 2, default_timeout_ms: int = wire.DEFAULT_HANDLER_TIMEOUT_MS
    ) -> None:
        self._nc = nc
        self._interval = interval_s
        self._window = window_s
        self._keep = max(1, keep_polls)
        self._default_timeout_ms = default_timeout_ms
        self._instances: dict[tuple[str, str], Instance] = {}
        self._poll = 0
        self._signature: object = None
        self.snapshot = Snapshot()
        self.polls_done = 0

    async def poll_once(self) -> None:
        """One ``$SRV.INFO`` round: collect answers for the window, then rebuild."""
        self._poll += 1
        for info in await collect(self._nc, "INFO", self._window):
            self._record(info)
        self._expire()
        self.polls_done += 1

    def _record(self, info: dict[str, Any]) -> None:
        if info.get("type") != wire.MICRO_INFO_TYPE:
            return
        name, iid, endpoints = info.get("name"), info.get("id"), info.get("endpoints") or []
        if not isinstance(name, str) or not isinstance(iid, str) or not isinstance(endpoints, list):
            return
        eps = [ep for ep in endpoints if isinstance(ep, dict)]
        md = info.get("metadata")
        self._instances[(name, iid)] = Instance(name, iid, eps, self._poll, wire.speaks_props(md if isinstance(md, dict) else None))

    def _expire(self) -> None:
        for ident, inst in list(self._instances.items()):
            if self._poll - inst.seen_poll >= self._keep:
                del self._instances[ident]
        signature = sorted((k, json.dumps(v.endpoints, sort_keys=True)) for k, v in self._instances.items())
        if signature != self._signature:
            self._signature = signature
            self.snapshot = build_snapshot(list(self._instances.values()), self._default_timeout_ms)
            log.info(
                "discovery: %d instances, %d handlers, %d enricher prefixes",
                len(self._instances),
                len(self.snapshot.handlers) + len(self.snapshot.wildcards),
                len(self.snapshot.enrichers),
            )

    async def run(self, started: asyncio.Event | None = None) -> None:
        """Poll until cancelled (even if a poll swallowed the cancel); ``started`` is set
        after the first poll; a failed poll keeps the last snapshot."""
        await every(self._interval, self._poll_if_connected, lambda exc: log.error("discovery poll failed", exc_info=exc),
                    started=started)

    async def _poll_if_connected(self) -> None:
        if self._nc.is_connected:
            await self.poll_once()


__all__ = ["Discovery", "HandlerRoute", "PathRoute", "Snapshot", "build_snapshot"]
