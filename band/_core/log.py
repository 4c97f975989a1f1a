"""``logger``: structlog, one JSON object per line with ``JSON_LOGS=1``, console otherwise.

Output is configured by :func:`configure` (called by ``band run``), never at import.
Every line a service logs carries its ``service`` name.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

import structlog

from .. import tracing

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def configure(env: Mapping[str, str] | None = None, stream: Any = None) -> None:
    """Set the process's log format from ``JSON_LOGS`` and ``LOG_LEVEL``."""
    env = os.environ if env is None else env
    level = _LEVELS.get((env.get("LOG_LEVEL") or "info").lower(), logging.INFO)
    json_logs = _truthy(env.get("JSON_LOGS"))
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        tracing.add_ids,  # trace_id/span_id inside a span (free when tracing is off)
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    if json_logs:
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=False)]
    _configure_stdlib(level, json_logs, stream or sys.stderr)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def _configure_stdlib(level: int, json_logs: bool, stream: Any) -> None:
    """Library logs (nats-py, aiohttp) in the same format: python-json-logger for JSON."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(tracing.add_ids_to_record)
    if json_logs:
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d [%(levelname)-8s] %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.INFO))


class Logger:
    """The documented logger: ``logger.info('message', data={...}, **fields)``."""

    __slots__ = ("_fields",)

    def __init__(self, **fields: Any) -> None:
        self._fields = fields

    def bind(self, **fields: Any) -> Logger:
        return Logger(**{**self._fields, **fields})

    def _log(self, method: str, event: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        if args:
            event = event % args
        getattr(structlog.get_logger().bind(**self._fields), method)(event, **fields)

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("debug", event, args, fields)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("info", event, args, fields)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("warning", event, args, fields)

    warn = warning

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("error", event, args, fields)

    def critical(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("critical", event, args, fields)

    def exception(self, event: str, *args: Any, **fields: Any) -> None:
        """Log at error level with the current exception's traceback."""
        fields.setdefault("exc_info", True)
        self._log("error", event, args, fields)
