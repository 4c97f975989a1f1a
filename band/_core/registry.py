"""What a service declares: endpoints, workers and cleanups, recorded by decorators.

Decorators only record (style.md §2): no subscription, no loop, no I/O. Subjects are
worked out when the service starts and knows its name. Bad or duplicate declarations
raise :class:`~band.errors.ConfigError` right at the decorator.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .. import wire
from ..errors import ConfigError

Role = Literal["handler", "enricher", "listener", "rpc"]
AsyncFn = Callable[..., Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CLEANUP_TIMEOUT_S = 0.1
DEFAULT_MAX_DELIVER = 5


@dataclass(frozen=True)
class Endpoint:
    """One exposed function and how it is reached."""

    role: Role
    fn: AsyncFn
    method: str  # the function's name; also its RPC method name
    name: str | None = None  # handler: the routing-key name ('*' = wildcard)
    alias: str | None = None  # handler: answer for this service name instead
    path: str | None = None  # handler: custom HTTP path for the edge
    timeout_ms: int = wire.DEFAULT_HANDLER_TIMEOUT_MS
    keys: tuple[str, ...] = ()  # enricher/listener: key prefixes (empty = all)
    props: Mapping[str, str] = field(default_factory=dict)  # enricher: arg -> dot-path
    bots: bool = True  # enricher: asked for hits the edge flagged as bots too
    durable: bool = False  # listener: JetStream durable consumer
    max_deliver: int = DEFAULT_MAX_DELIVER  # durable listener: tries before the DLQ
    accepts: frozenset[str] | None = None  # named params; None = takes **kwargs
    required: frozenset[str] = frozenset()  # params without a default
    ack_wait_s: float = 30.0  # durable listener: redelivery after this long unacked
    deliver: str = "all"  # durable listener, first start: "all" kept events or only "new"
    schema: str | None = None  # handler/listener: the schema (band/schemas.py) its events must match

    def arguments(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``params`` without the names the function cannot take (a message has many fields)."""
        if self.accepts is None:
            return params
        return {k: v for k, v in params.items() if k in self.accepts}

    def call(self, params: Mapping[str, Any]) -> Awaitable[Any]:
        """Call with ``params`` as keywords, dropping names the function cannot take."""
        return self.fn(**self.arguments(params))

    def missing(self, params: Mapping[str, Any]) -> list[str]:
        """Required parameters ``params`` lacks (a clear 400 instead of a TypeError)."""
        return sorted(self.required - params.keys())

    def handler_key(self, service: str) -> str:
        return f"{wire.KEY_PREFIX}.{self.alias or service}.{self.name}"


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _signature(fn: Callable[..., Any]) -> dict[str, Any]:
    """What ``fn`` takes by name (``accepts``: None when it has ``**kwargs``) and what it requires."""
    params = list(inspect.signature(fn).parameters.values())
    named = [p for p in params if p.kind in _NAMED]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return {
        "accepts": None if takes_any else frozenset(p.name for p in named),
        "required": frozenset(p.name for p in named if p.default is inspect.Parameter.empty),
    }


def _require_async(fn: Callable[..., Any], what: str) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise ConfigError(f"{what} {getattr(fn, '__qualname__', fn)!r} must be an 'async def' function")


def _check_schema(schema: Any) -> str | None:
    """A declared schema's name: a routing key or prefix, as its file is named."""
    if schema is None:
        return None
    if not isinstance(schema, str):
        raise ConfigError(f"schema must be a routing key naming a schema file, like 'in.gen.track.purchase', got {schema!r}")
    return _check_keys(schema)[0]


def _check_keys(keys: Any) -> tuple[str, ...]:
    if keys is None:
        return ()
    if isinstance(keys, str):
        keys = [keys]
    out = []
    for key in keys:
        parts = str(key).split(".")
        if not all(wire.is_token(p) for p in parts) or parts[0] != wire.EVENTS_ROOT:
            raise ConfigError(f"key prefix {key!r} must be tokens under 'in.', like 'in.gen.track'")
        out.append(str(key))
    return tuple(out)


@dataclass
class Registry:
    """Everything one service declared, in declaration order."""

    endpoints: list[Endpoint] = field(default_factory=list)
    workers: list[AsyncFn] = field(default_factory=list)
    cleanups: list[tuple[AsyncFn, float]] = field(default_factory=list)

    def add(self, endpoint: Endpoint) -> None:
        for other in self.endpoints:
            if other.role == endpoint.role and other.method == endpoint.method:
                raise ConfigError(f"{endpoint.role} {endpoint.method!r} is declared twice")
            if (
                endpoint.role == "handler"
                and other.role == "handler"
                and (other.alias, other.name) == (endpoint.alias, endpoint.name)
            ):
                raise ConfigError(
                    f"handlers {other.method!r} and {endpoint.method!r} both claim the name {endpoint.name!r}"
                )
        self.endpoints.append(endpoint)

    def by_role(self, role: Role) -> list[Endpoint]:
        return [e for e in self.endpoints if e.role == role]

    def find_handler(self, service: str, key: str) -> Endpoint | None:
        """The handler for ``key``; a specific name wins over the wildcard."""
        wildcard = None
        for ep in self.by_role("handler"):
            if ep.name == "*":
                if key.rsplit(".", 1)[0] == f"{wire.KEY_PREFIX}.{ep.alias or service}":
                    wildcard = ep
            elif ep.handler_key(service) == key:
                return ep
        return wildcard

    def rpc_methods(self) -> dict[str, Endpoint]:
        """Methods other services may call: ``@expose()`` and handlers, by function name."""
        methods: dict[str, Endpoint] = {}
        for ep in self.endpoints:
            if ep.role in ("rpc", "handler"):
                methods.setdefault(ep.method, ep)
        return methods


class Expose:
    """The documented ``expose`` decorator family, recording into one :class:`Registry`."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __call__(self) -> Callable[[F], F]:
        """``@expose()``: callable by other services over RPC, never from HTTP."""

        def record(fn: F) -> F:
            _require_async(fn, "@expose()")
            self._registry.add(Endpoint("rpc", fn, fn.__name__, **_signature(fn)))
            return fn

        return record

    def handler(
        self,
        name: str | None = None,
        path: str | None = None,
        alias: str | None = None,
        timeout: int | float | None = None,
        schema: str | None = None,
    ) -> Callable[[F], F]:
        """``@expose.handler()``: answers HTTP hits on ``in.gen.<alias or service>.<name>``.

        Args:
            name: routing-key name (default: the function's name); ``'*'`` takes every name.
            path: an HTTP path for the edge to route here, e.g. ``/mymethod/:id``.
            alias: answer under this service name instead of our own.
            timeout: milliseconds the edge waits for the answer (default 200).
            schema: the schema (``schemas/<key>.yml``) a hit must match; one that does not
                is answered 400 listing its errors, and the function is not called.
        """
        expected = _check_schema(schema)

        def record(fn: F) -> F:
            _require_async(fn, "@expose.handler()")
            hname = fn.__name__ if name is None else name
            if hname != "*" and not wire.is_token(hname):
                raise ConfigError(f"handler name {hname!r} must be letters, digits, '_' or '-' (or '*')")
            if alias is not None and not wire.is_token(alias):
                raise ConfigError(f"handler alias {alias!r} must be letters, digits, '_' or '-'")
            if path is not None and (not path.startswith("/") or any(c in path for c in " \r\n?#")):
                raise ConfigError(f"handler path {path!r} must start with '/' and have no spaces, '?' or '#'")
            if timeout is not None and (isinstance(timeout, bool) or not 0 < timeout <= 600_000):
                raise ConfigError(f"handler timeout must be milliseconds between 1 and 600000, got {timeout!r}")
            ms = wire.DEFAULT_HANDLER_TIMEOUT_MS if timeout is None else int(timeout)
            endpoint = Endpoint(
                "handler", fn, fn.__name__, name=hname, alias=alias, path=path, timeout_ms=ms, schema=expected,
                **_signature(fn),
            )
            self._registry.add(endpoint)
            return fn

        return record

    def enricher(self, props: Mapping[str, str] | None = None, keys: Any = None, *, bots: bool = True) -> Callable[[F], F]:
        """``@expose.enricher(props, keys, bots=True)``: adds its answer at ``data.<service>``.

        Args:
            props: argument name -> dot-path in the message (``{'ip': 'td.ip'}``).
            keys: routing-key prefixes by whole tokens (``['in.gen.track']``); none = all.
            bots: ``False``: the edge does not ask it for hits it flagged as bots (crawlers,
                headless browsers, spam), so a crawler storm does not load it.
        """
        if not isinstance(bots, bool):
            raise ConfigError(f"enricher bots must be True or False, got {bots!r}")
        if props is not None and not (
            isinstance(props, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())
        ):
            raise ConfigError("enricher props must map argument names to dot-paths, like {'ip': 'td.ip'}")
        checked = _check_keys(keys)

        def record(fn: F) -> F:
            _require_async(fn, "@expose.enricher()")
            self._registry.add(
                Endpoint("enricher", fn, fn.__name__, keys=checked, props=dict(props or {}), bots=bots, **_signature(fn))
            )
            return fn

        return record

    def listener(
        self,
        keys: Any = None,
        durable: bool = False,
        max_deliver: int = DEFAULT_MAX_DELIVER,
        ack_wait: float = 30.0,
        deliver: Literal["all", "new"] = "all",
        schema: str | None = None,
    ) -> Callable[[F], F]:
        """``@expose.listener()``: gets every final message; its return value is ignored.

        Args:
            keys: narrow to these routing-key prefixes (default: every event).
            durable: a JetStream durable consumer: acked after the function returns,
                redelivered if it raises or the service dies.
            max_deliver: durable only: tries before the message goes to ``band.dlq.<service>``.
            ack_wait: durable only: seconds before an unacked message (a dead process) is redelivered.
            deliver: durable only, first start: ``"all"`` events the stream holds or only ``"new"``.
            schema: the schema (``schemas/<key>.yml``) an event must match; one that does
                not is skipped (counted, logged, acked when durable), never passed in.
        """
        checked = _check_keys(keys)
        expected = _check_schema(schema)
        if max_deliver < 1:
            raise ConfigError("listener max_deliver must be at least 1")
        if deliver not in ("all", "new"):
            raise ConfigError(f"listener deliver must be 'all' or 'new', got {deliver!r}")
        if not ack_wait > 0:
            raise ConfigError("listener ack_wait must be positive seconds")

        def record(fn: F) -> F:
            _require_async(fn, "@expose.listener()")
            self._registry.add(
                Endpoint(
                    "listener", fn, fn.__name__, keys=checked, durable=durable, max_deliver=max_deliver,
                    ack_wait_s=float(ack_wait), deliver=deliver, schema=expected,
                    **_signature(fn),
                )
            )
            return fn

        return record


class Lifecycle:
    """``@worker()`` and ``@cleanup()``: functions run at start and at stop."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def worker(self) -> Callable[[F], F]:
        """``@worker()``: started with the service, cancelled at stop."""

        def record(fn: F) -> F:
            _require_async(fn, "@worker()")
            self._registry.workers.append(fn)
            return fn

        return record

    def cleanup(self, timeout: float = DEFAULT_CLEANUP_TIMEOUT_S) -> Callable[[F], F]:
        """``@cleanup()``: run at stop, cancelled after ``timeout`` seconds (0.1 by default)."""

        def record(fn: F) -> F:
            _require_async(fn, "@cleanup()")
            self._registry.cleanups.append((fn, timeout))
            return fn

        return record
