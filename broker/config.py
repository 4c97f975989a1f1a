"""Every knob of the edge in one frozen dataclass, read from arguments and the environment.

Nothing is read at import: :func:`from_env` and :func:`broker.cli.main` build a
:class:`EdgeConfig` when asked. Environment names are ``EDGE_<FIELD>`` (upper case),
plus the conventional ``HOST``, ``PORT`` and ``NATS_URL``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from band import wire
from band.errors import ConfigError  # one ConfigError for services and the edge; its message names the knob
from band.runtime import StreamLimits

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ALIASES: dict[str, str] = {"t4k": "track", "gif": "pixel", "away": "redir"}
DEFAULT_TRUSTED_PROXIES: tuple[str, ...] = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
THREE_YEARS_S = 3 * 365 * 24 * 3600
DEFAULT_BUILTIN_ENRICHERS: dict[str, str] = {"fpid": "in.gen.track", "stored": "in.gen.track"}


@dataclass(frozen=True)
class EdgeConfig:
    """All settings of one edge process; defaults are what `python -m broker` runs with."""

    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    nats_urls: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    name: str = "band-edge"

    # pipeline
    enrich_timeout_ms: int = wire.DEFAULT_ENRICH_TIMEOUT_MS
    enrich_timeouts: Mapping[str, int] = field(default_factory=dict)  # key prefix -> ms, longest prefix wins
    handler_timeout_ms: int = wire.DEFAULT_HANDLER_TIMEOUT_MS  # when discovery does not know the handler
    publish_timeout_ms: int = 2000  # JetStream ack wait before answering 503
    max_inflight: int = 4096  # hits in the pipeline at once; more answer 503

    # discovery
    discovery_interval_s: float = 1.5
    discovery_window_s: float = 0.25
    discovery_keep_polls: int = 2  # an instance unseen for this many polls is dropped

    # HTTP surface
    aliases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))
    cookie_name: str = "uid"
    cookie_domain: str = ""
    cookie_max_age_s: int = THREE_YEARS_S
    cookie_secure: bool = True
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES
    redirect_hosts: tuple[str, ...] = ()  # allow-list for the built-in `redir`; empty = any http(s) host
    cors_origins: tuple[str, ...] = ()  # origins whose pages may read answers with the visitor's cookie; empty = any
    # keys a backend sends to POST /band/identify.json (Authorization: Bearer <key>), each with
    # its projectId; env EDGE_PROJECT_KEYS="key:projectId,..."; empty = the path answers 403
    project_keys: Mapping[str, int] = field(default_factory=dict)
    domain: str = ""  # the site's domain (env DOMAIN): the uid cookie's Domain by front's auto rule
    lib_file: str = ""  # /lib.js serves this web SDK file; empty = band's own tracker
    lib_global: str = "rstat"  # the SDK's global (rstat for SDK 4.x) that /lib.js configures
    client_common: Mapping[str, Any] = field(default_factory=dict)  # options spread into /lib.js's configure
    lib_max_age_s: int = 3600  # how long a visitor's own browser keeps /lib.js (private: it carries that visitor's uid)
    redis_url: str = ""  # the built-in `stored` enricher reads s:<uid> here; empty = off
    builtin_enrichers: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_BUILTIN_ENRICHERS))  # name -> key prefix
    # bots and spam (broker.bots): flag, drop or keep per reason; every hit is classified
    bot_detection: bool = True  # False: no hit is classified (EDGE_BOT_DETECTION=0)
    bots: Mapping[str, str] = field(default_factory=dict)  # reason -> action; a reason not named is flagged
    spam_referrers_file: str = ""  # more referrer-spam domains, one a line, added to the shipped list
    burst_hits: int = 300  # a uid past this many hits within a minute is a `burst`; 0 = off
    schemas_dir: str = "schemas"  # JSON Schemas per key (band.schemas; BAND_SCHEMAS for edge and store alike)
    certfile: str = ""  # TLS: serve https/wss with this certificate chain (PEM) ...
    keyfile: str = ""  # ... and its private key

    # limits
    max_body_bytes: int = 1024 * 1024
    body_budget_bytes: int = 64 * 1024 * 1024  # request bodies in flight, all hits together; past it 503 + Retry-After
    max_fields: int = 1000  # query + body fields
    max_depth: int = 32  # JSON nesting
    max_line_bytes: int = 8190  # request line (so the query string) and each header line
    body_timeout_s: float = 10.0  # reading a body slower than this answers 408
    keepalive_timeout_s: float = 15.0  # also bounds a client that never finishes its headers
    shutdown_timeout_s: float = 10.0  # the whole stop: body reads, in-flight hits, NATS drain (broker.stopping)
    ws_max_inflight: int = 16  # frames of one socket in the pipeline at once

    # uploads: POST /upload/<service>/<name>, files streamed into a JetStream object store
    upload_max_bytes: int = 512 * 1024 * 1024  # the whole request body; past it 413
    upload_bucket: str = wire.UPLOAD_BUCKET
    upload_ttl_s: float = 24 * 3600.0  # stored files expire after this long
    upload_idle_timeout_s: float = 30.0  # no bytes from the client for this long answers 408
    upload_max_concurrent: int = 16  # uploads streaming at once; more answer 503
    upload_storage: str = "file"

    # JetStream stream, when the edge creates it
    stream_max_age_s: float = 7 * 24 * 3600.0
    stream_max_bytes: int = -1
    stream_max_msgs: int = -1
    stream_replicas: int = 1
    stream_storage: str = "file"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if not self.nats_urls:
            raise ConfigError("nats_urls is empty")
        for knob in ("enrich_timeout_ms", "handler_timeout_ms", "publish_timeout_ms", "max_body_bytes", "body_budget_bytes", "max_fields", "max_depth",
                     "max_inflight", "upload_max_bytes", "upload_ttl_s", "upload_idle_timeout_s", "upload_max_concurrent"):
            if getattr(self, knob) <= 0:
                raise ConfigError(f"{knob} must be > 0, got {getattr(self, knob)}")
        if self.body_budget_bytes < self.max_body_bytes:
            raise ConfigError(f"body_budget_bytes ({self.body_budget_bytes}) must be at least max_body_bytes ({self.max_body_bytes}): "
                              "else a body within the limit could never be read")
        for alias, service in self.aliases.items():
            if not wire.is_token(alias) or not wire.is_token(service):
                raise ConfigError(f"aliases: {alias!r} -> {service!r} is not a pair of subject tokens")
        for prefix, ms in self.enrich_timeouts.items():
            if not isinstance(ms, int) or ms <= 0:
                raise ConfigError(f"enrich_timeouts[{prefix!r}] must be a positive integer (ms)")
        self.proxy_networks()  # validates
        for builtin, prefix in self.builtin_enrichers.items():
            if builtin not in DEFAULT_BUILTIN_ENRICHERS or not isinstance(prefix, str):
                raise ConfigError(f"builtin_enrichers: {builtin!r} -> {prefix!r}: known are {sorted(DEFAULT_BUILTIN_ENRICHERS)}, each to a key prefix")
        self._check_bots()
        for key, project in self.project_keys.items():
            if len(key) < 16 or not isinstance(project, int):
                raise ConfigError("project_keys: each key needs at least 16 characters (a secret) and a whole projectId")
        if bool(self.certfile) != bool(self.keyfile):
            raise ConfigError("certfile and keyfile go together: give both for TLS, or neither")
        if not self.lib_global.isidentifier():
            raise ConfigError(f"lib_global must be a JavaScript name, got {self.lib_global!r}")
        if not wire.is_token(self.upload_bucket):
            raise ConfigError(f"upload_bucket {self.upload_bucket!r}: letters, digits, '_' and '-' only")
        for knob in ("stream_storage", "upload_storage"):
            if getattr(self, knob) not in ("file", "memory"):
                raise ConfigError(f"{knob} must be file or memory, got {getattr(self, knob)!r}")

    def _check_bots(self) -> None:
        from .bots import ACTIONS, REASONS

        for reason, action in self.bots.items():
            if reason not in REASONS or action not in ACTIONS:
                raise ConfigError(f"bots: {reason!r} -> {action!r}: reasons are {', '.join(REASONS)}; actions are {', '.join(ACTIONS)}")
        if self.burst_hits < 0:
            raise ConfigError(f"burst_hits must be >= 0 (0 turns the burst check off), got {self.burst_hits}")
        if self.spam_referrers_file and not os.path.isfile(self.spam_referrers_file):
            raise ConfigError(f"spam_referrers_file {self.spam_referrers_file!r} is not a file: give a text file with one domain a line")

    def proxy_networks(self) -> tuple[IPNetwork, ...]:
        try:
            return tuple(ipaddress.ip_network(n, strict=False) for n in self.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"trusted_proxies: {exc}") from None

    def stream_limits(self) -> StreamLimits:
        return StreamLimits(
            max_age_s=self.stream_max_age_s,
            max_bytes=self.stream_max_bytes,
            max_msgs=self.stream_max_msgs,
            replicas=self.stream_replicas,
            storage=self.stream_storage,
        )

    def enrich_timeout_for(self, key: str) -> float:
        """Seconds the edge waits for enrichers of ``key`` (longest matching prefix wins)."""
        best, ms = -1, self.enrich_timeout_ms
        for prefix, value in self.enrich_timeouts.items():
            if wire.key_matches(prefix, key) and len(prefix) > best:
                best, ms = len(prefix), value
        return ms / 1000

    def replace(self, **changes: Any) -> EdgeConfig:
        return dataclasses.replace(self, **changes)


def _parse(name: str, kind: Any, text: str) -> Any:
    """One environment value as the field's type; lists are comma-separated, maps JSON."""
    try:
        if kind in ("int", int):
            return int(text)
        if kind in ("float", float):
            return float(text)
        if kind in ("bool", bool):
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"not a boolean: {text!r}")
        if "tuple" in str(kind):
            return tuple(p.strip() for p in text.split(",") if p.strip())
        if name == "EDGE_PROJECT_KEYS":
            return project_keys(text)
        if "Mapping" in str(kind):
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
        return text
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def project_keys(text: str) -> dict[str, int]:
    """``key:projectId,...`` as a mapping (a key may hold any character but ``,``)."""
    keys = {}
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, project = pair.rpartition(":")
        if not sep or not key or not project.strip().isdigit():
            raise ValueError(f"{pair[:6]}...: each entry is key:projectId (a whole number)")
        keys[key] = int(project)
    return keys


def split_urls(text: str) -> tuple[str, ...]:
    """``NATS_URL`` may list several servers separated by commas."""
    return tuple(u.strip() for u in text.split(",") if u.strip())


def from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> EdgeConfig:
    """Defaults, then ``EDGE_*``/``HOST``/``PORT``/``NATS_URL``, then ``overrides``.

    Raises:
        ConfigError: a value does not parse or is out of range (names the variable).
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in dataclasses.fields(EdgeConfig):
        var = f"EDGE_{f.name.upper()}"
        if var in env:
            values[f.name] = _parse(var, f.type, env[var])
    if "HOST" in env:
        values["host"] = env["HOST"]
    if "PORT" in env:
        values["port"] = _parse("PORT", int, env["PORT"])
    if "DOMAIN" in env and "EDGE_DOMAIN" not in env:  # front's name for it
        values["domain"] = env["DOMAIN"]
    if "BAND_SCHEMAS" in env and "EDGE_SCHEMAS_DIR" not in env:  # the store reads the same variable
        values["schemas_dir"] = env["BAND_SCHEMAS"]
    if "NATS_URL" in env:
        values["nats_urls"] = split_urls(env["NATS_URL"])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return EdgeConfig(**values)


__all__ = ["DEFAULT_ALIASES", "ConfigError", "EdgeConfig", "from_env", "split_urls"]
