"""Write generated events straight into the store: its config, its tables, its rows, its insert.

No second copy of the schema: the store's own config gives the tables (created as the
store creates them), its row builder routes and flattens each event, its engine inserts.
The generated ``time`` is kept, so the days of the demo stay days. The data directory must
not be open in a running store (chDB lets one process open it).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..store.config import StoreConfig, load
from ..store.engines import open_backend
from ..store.migrate import ensure
from ..store.rows import RowBuilder
from ..store.writer import Engine

BATCH = 5000


def rows_by_table(events: list[dict[str, Any]], config: StoreConfig) -> dict[str, list[dict[str, Any]]]:
    """The rows the store would write for ``events``, by table."""
    builder = RowBuilder(config)
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        table, row = builder.build(event)
        tables[table].append(row)
    return dict(tables)


async def insert(engine: Engine, config: StoreConfig, events: list[dict[str, Any]],
                 progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Create the store's tables if missing, then insert the events' rows; rows per table."""
    await engine.call(ensure, engine.backend, config)
    done, counts = 0, {}
    for table, rows in rows_by_table(events, config).items():
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            await engine.insert(table, chunk)
            done += len(chunk)
            if progress:
                progress(done, len(events))
        counts[table] = len(rows)
    return counts


def write(events: list[dict[str, Any]], data_dir: Path | None = None,
          progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Into the store's data directory (default: the store config's ``data_dir``) or its server."""
    config = load()

    async def run() -> dict[str, int]:
        engine = Engine.of(open_backend(config.clickhouse_url, data_dir or config.data_dir), config)
        try:
            return await insert(engine, config, events, progress)
        finally:
            engine.close()

    return asyncio.run(run())


__all__ = [
    "BATCH",
    "insert",
    "rows_by_table",
    "write",
]
