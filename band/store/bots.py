"""How many stored events the edge flagged as bots, per reason (``band store status``, the panel).

The ``bot`` column (``LowCardinality(String)``, empty for people) is read with the empty
value filtered out, so the count costs a scan of one dictionary-encoded column, not of rows.
"""

from __future__ import annotations

from .. import wire
from .config import StoreConfig


def counts_sql(config: StoreConfig) -> str | None:
    """``SELECT bot, count() AS n ...`` over every routed table with a ``bot`` column
    (``None`` when none has one)."""
    tables = sorted(t for t in config.routed_tables() if wire.BOT_FIELD in config.tables[t].columns)
    if not tables:
        return None
    column = wire.BOT_FIELD
    union = " UNION ALL ".join(f"SELECT {column} FROM {config.database}.{t} WHERE {column} != ''" for t in tables)
    return f"SELECT {column} AS reason, count() AS n FROM ({union}) GROUP BY reason ORDER BY reason"


__all__ = ["counts_sql"]
