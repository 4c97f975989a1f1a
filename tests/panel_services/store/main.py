"""A stand-in ``store`` for the panel's tests: sqlite in memory, answering ``query`` as the
store's contract says ({"columns": [...], "rows": [...]}), fed by a listener on every event.
The real store runs ClickHouse; sqlite understands the simple SQL the tests send."""

import sqlite3
import time

from band import RPCError, expose

db = sqlite3.connect(":memory:", check_same_thread=False)
db.execute("ATTACH DATABASE ':memory:' AS stats")
db.execute("CREATE TABLE stats.events (id TEXT, uid TEXT, service TEXT, name TEXT, dateTime TEXT, page_url TEXT)")


@expose.listener()
async def record(service="", name="", uid="", id="", data=None, **rest):
    url = (data or {}).get("url", "") if isinstance(data, dict) else ""
    db.execute("INSERT INTO stats.events VALUES (?, ?, ?, ?, ?, ?)", (id, uid, service, name, time.strftime("%Y-%m-%d %H:%M:%S"), url))


@expose()
async def query(sql, params=None):
    if not sql.lstrip().lower().startswith(("select", "with")):
        raise RPCError("read-only: this store answers SELECT queries only", 400)
    try:
        cursor = db.execute(sql, params or {})
    except sqlite3.Error as exc:
        raise RPCError(f"sqlite: {exc}", 400) from exc
    names = [d[0] for d in cursor.description]
    return {"columns": [{"name": n, "type": "String"} for n in names], "rows": [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]}
