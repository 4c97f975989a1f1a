"""Which engine a store opens: a ClickHouse server when a URL is set, else chDB in a
process of its own. Apart from :mod:`.backend`, which both engines build on, so neither
the backend nor the isolated child imports the other."""

from __future__ import annotations

from pathlib import Path

from .backend import Backend, ServerBackend
from .isolated import IsolatedChdb

__all__ = ["open_backend"]


def open_backend(clickhouse_url: str, data_dir: Path) -> Backend:
    """A server when ``clickhouse_url`` is set, else chDB on ``data_dir``, in a process of
    its own (:mod:`.isolated`: chDB in this process would slow the event loop)."""
    if clickhouse_url:
        return ServerBackend(clickhouse_url)
    return IsolatedChdb(data_dir)
