"""OpenTelemetry tracing for services and the edge: off (and nearly free) unless asked for.

Tracing turns on when the standard ``OTEL_*`` variables ask for an exporter
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_TRACES_EXPORTER``) and the ``trace`` extra is installed, or when a program hands
in its own ``TracerProvider`` with :func:`use` (tests use the SDK's in-memory exporter).

The hot paths read one module flag, :data:`ON`, and call in here only when it is true:
with tracing off no span object, header or context is made per message. The W3C
``traceparent``/``tracestate`` headers (names in :mod:`band.wire`) carry the trace over
NATS; nothing else of OpenTelemetry (baggage, other propagators) goes on the wire.

OpenTelemetry is imported only when tracing is switched on, so ``import band`` reads
no entry points and band runs without the extra installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Iterator, Mapping
from typing import Any

from . import wire

ON: bool = False  # the one check the hot paths make

_api: Any = None  # opentelemetry.trace, once switched on
_tracer: Any = None
_propagator: Any = None
_owned: Any = None  # a provider :func:`setup` built, ours to flush at exit
_kinds: Any = None
_MAX_HEADER = 512  # W3C: a traceparent is 55 characters; vendors keep tracestate short


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def wanted(env: Mapping[str, str] | None = None) -> bool:
    """Do the ``OTEL_*`` variables ask for traces to be exported?"""
    env = os.environ if env is None else env
    if _truthy(env.get("OTEL_SDK_DISABLED")):
        return False
    exporter = (env.get("OTEL_TRACES_EXPORTER") or "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Switch tracing on for this process when ``OTEL_*`` asks for it; ``True`` if on.

    Exporters by ``OTEL_TRACES_EXPORTER`` (default ``otlp``: OTLP over HTTP, configured
    by the exporter's own ``OTEL_EXPORTER_OTLP_*`` variables; ``console`` prints spans).
    ``service.name`` is ``OTEL_SERVICE_NAME``, else ``service_name``.
    """
    env = os.environ if env is None else env
    if not wanted(env):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        print(
            "tracing: OTEL_* asks for traces but OpenTelemetry is not installed; "
            "install it with: pip install 'band[trace]' (band runs on without tracing)",
            file=sys.stderr,
        )
        return False
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    names = [n.strip().lower() for n in (env.get("OTEL_TRACES_EXPORTER") or "otlp").split(",") if n.strip()]
    for name in names:
        exporter: SpanExporter
        if name == "console":
            exporter = ConsoleSpanExporter()
        elif name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                print("tracing: the OTLP exporter is missing; install it with: pip install 'band[trace]'", file=sys.stderr)
                continue
            exporter = OTLPSpanExporter()
        else:
            print(f"tracing: unknown OTEL_TRACES_EXPORTER {name!r} (band knows otlp, console); ignored", file=sys.stderr)
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))
    use(provider)
    global _owned
    _owned = provider
    return True


def use(provider: Any) -> None:
    """Trace with ``provider`` (an SDK ``TracerProvider``) from now on."""
    global ON, _api, _tracer, _propagator, _kinds
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _api = trace
    _kinds = trace.SpanKind
    # a malformed tracestate from a client would log a warning per hit: drop it quietly
    for name in ("opentelemetry.trace.span", "opentelemetry.trace.propagation.tracecontext"):
        logging.getLogger(name).setLevel(logging.ERROR)
    _tracer = provider.get_tracer("band")
    _propagator = TraceContextTextMapPropagator()
    ON = True


def shutdown() -> None:
    """Switch tracing off; a provider :func:`setup` built flushes its spans first."""
    global ON, _owned
    ON = False
    if _owned is not None:
        _owned.shutdown()
        _owned = None


# --- context on the wire --------------------------------------------------------------
def extract(headers: Mapping[str, str] | None) -> Any:
    """The trace context carried by NATS or HTTP headers (``None``: start a new trace)."""
    parent = headers.get(wire.TRACEPARENT_HEADER) if headers else None
    if not parent or len(parent) > _MAX_HEADER:  # a bad header starts a new trace, quietly:
        return None  # the library would log a warning per hit, a flood a client could cause
    state = headers.get(wire.TRACESTATE_HEADER) if headers else None
    if state is not None and len(state) > _MAX_HEADER:
        headers = {wire.TRACEPARENT_HEADER: parent}
    return _propagator.extract(headers)


def inject(headers: dict[str, str], span: Any = None) -> dict[str, str]:
    """Write ``span``'s (default: the current span's) context into ``headers``."""
    context = context_of(span) if span is not None else None
    _propagator.inject(headers, context=context)
    return headers


def context_of(span: Any) -> Any:
    """A context whose current span is ``span`` (the parent of the next span started in it)."""
    return _api.set_span_in_context(span)


def attach(span: Any) -> Any:
    """Make ``span`` current in this task until :func:`detach` (log lines then carry its ids)."""
    from opentelemetry import context

    return context.attach(context_of(span))


def detach(token: Any) -> None:
    from opentelemetry import context

    context.detach(token)


def ids(span: Any) -> tuple[str, str] | None:
    """``(trace_id, span_id)`` as lowercase hex, or ``None`` for no valid span."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def start(name: str, kind: str = "internal", context: Any = None, **attributes: Any) -> Any:
    """A started span (``kind``: server, client, producer, consumer, internal)."""
    return _tracer.start_span(name, context=context, kind=getattr(_kinds, kind.upper()), attributes=attributes)


def fail(span: Any, description: str) -> None:
    span.set_status(_api.Status(_api.StatusCode.ERROR, description))


# --- service side ---------------------------------------------------------------------
def _name(subject: str) -> tuple[str, str]:
    """A span name and the role for a request arriving on ``subject``."""
    for prefix, role in ((wire.HANDLE_PREFIX, "handle"), (wire.ENRICH_PREFIX, "enrich"), (wire.RPC_PREFIX, "rpc")):
        if subject.startswith(prefix + "."):
            return f"{role} {subject[len(prefix) + 1 :]}", role
    return f"event {subject}", "listener"


async def serving(msg: Any, work: Awaitable[None]) -> None:
    """Run ``work`` (one request a service handles) inside a span continuing the sender's trace.

    Few attributes: the SDK's cost per span grows with them, and the name already says
    the role and the key or method.
    """
    name, role = _name(msg.subject)
    span = start(name, "consumer" if role == "listener" else "server", extract(msg.headers), **{"band.role": role})
    with _api.use_span(span, end_on_exit=True):
        await work


async def delivery(msg: Any, work: Awaitable[None]) -> None:
    """Run ``work`` (one durable delivery) in a span with the delivery attempt."""
    meta = msg.metadata
    span = start(
        f"event {msg.subject}", "consumer", extract(msg.headers),
        **{"messaging.system": "nats", "band.role": "listener", "band.key": msg.subject, "band.durable": True,
           "messaging.consumer.group.name": meta.consumer, "band.delivery_attempt": meta.num_delivered},
    )
    with _api.use_span(span, end_on_exit=True):
        await work


async def calling(role: str, method: str, work: Awaitable[Any]) -> Any:
    """Await one enricher or listener function in its own span."""
    span = start(f"{role} {method}", "internal", **{"band.role": role})
    with _api.use_span(span, end_on_exit=True):
        return await work


def failed(code: int, description: str) -> None:
    """Mark the current span as answered with an error ``code``."""
    span = _api.get_current_span()
    span.set_attribute("band.status_code", code)
    fail(span, description)


@contextlib.contextmanager
def outgoing(name: str, subject: str, kind: str = "client") -> Iterator[dict[str, str]]:
    """A span around one request or publish a service sends; yields the headers to send."""
    span = start(name, kind, None, **{"messaging.destination.name": subject})
    with _api.use_span(span, end_on_exit=True):
        yield inject({}, span)


# --- logs -----------------------------------------------------------------------------
def add_ids(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: ``trace_id``/``span_id`` on lines logged inside a span."""
    if ON:
        found = ids(_api.get_current_span())
        if found is not None:
            event.setdefault("trace_id", found[0])
            event.setdefault("span_id", found[1])
    return event


def add_ids_to_record(record: Any) -> bool:
    """logging filter: the same ids on library and edge log records (JSON lines show them)."""
    if ON:
        found = ids(_api.get_current_span())
        if found is not None:
            record.trace_id, record.span_id = found
    return True


__all__ = [
    "ON",
    "add_ids",
    "add_ids_to_record",
    "attach",
    "calling",
    "context_of",
    "delivery",
    "detach",
    "extract",
    "fail",
    "failed",
    "ids",
    "inject",
    "outgoing",
    "serving",
    "setup",
    "shutdown",
    "start",
    "use",
    "wanted",
]
