"""The store from a service: ``from band import store``.

::

    rows = await store.query(
        "SELECT page_url, count() AS views FROM stats.events WHERE date >= {since:Date} GROUP BY page_url",
        since="2024-05-01")
    await store.insert("adwords_costs", [{"date": "2024-05-01", "campaign": "x", "cost": 12.5}])

Both go over RPC to the ``store`` service (``band.rpc.store.query`` / ``.insert``), the
one process that opens the data. Values travel as server-side ``{name:Type}``
parameters, never formatted into the SQL. A bad query raises :class:`band.RPCError`
(code 400) with ClickHouse's message; ``store.query`` runs reads only.
"""

from __future__ import annotations

from typing import Any

from .._core.app import current_app

SERVICE = "store"
DEFAULT_TIMEOUT_S = 30.0

__all__ = ["query", "query_result", "insert", "SERVICE"]


async def query_result(sql: str, /, timeout__: float = DEFAULT_TIMEOUT_S, **params: Any) -> dict[str, Any]:
    """``{"columns": [{"name", "type"}], "rows": [{column: value}]}`` for a read-only query."""
    answer: dict[str, Any] = await current_app().rpc.request(SERVICE, "query", timeout__=timeout__, sql=sql, params=params)
    return answer


async def query(sql: str, /, timeout__: float = DEFAULT_TIMEOUT_S, **params: Any) -> list[dict[str, Any]]:
    """Rows as dicts; ``{name:Type}`` in ``sql`` takes ``name=value`` from ``params``.

    Raises:
        band.RPCError: 400 with ClickHouse's message for a bad query or a write;
            503 when no store runs.
    """
    rows: list[dict[str, Any]] = (await query_result(sql, timeout__=timeout__, **params))["rows"]
    return rows


async def insert(table: str, rows: list[dict[str, Any]], /, timeout__: float = DEFAULT_TIMEOUT_S) -> int:
    """Insert ``rows`` into ``table`` (a table of your own, defined in the store's store.yml).

    Returns the number of rows inserted.
    """
    answer = await current_app().rpc.request(SERVICE, "insert", timeout__=timeout__, table=table, rows=rows)
    return int(answer["inserted"])
