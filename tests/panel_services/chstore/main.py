"""A stand-in ``store`` on chDB (embedded ClickHouse) for the panel's tests: the store's RPC
contract (``query`` read-only, {"columns", "rows"}) over a few Rockstat-shaped rows, so the
panel's own ClickHouse SQL (the 24-hour chart, the saved queries) runs for real."""

import json

from chdb import session

from band import RPCError, expose

db = session.Session()
db.query("CREATE DATABASE IF NOT EXISTS stats")
COLUMNS = ("dateTime DateTime, date Date, service String, name String, uid UInt64, page_url String, "
           "sess_marks_utm_source String, sess_marks_utm_medium String, uaparser_browser_family String, "
           "uaparser_os_family String, sxgeo_country_iso String, bot LowCardinality(String)")
for table in ("events", "activity", "ping", "webhooks"):
    db.query(f"CREATE TABLE IF NOT EXISTS stats.{table} ({COLUMNS}) ENGINE = MergeTree ORDER BY dateTime")
db.query("INSERT INTO stats.events VALUES "
         "(now(), today(), 'track', 'page', 1, '/a', 'google', 'cpc', 'Chrome', 'Linux', 'NL', ''), "
         "(now() - INTERVAL 3 HOUR, today(), 'track', 'page', 2, '/b', '', '', 'Firefox', 'Windows', 'DE', ''), "
         "(now() - INTERVAL 1 HOUR, today(), 'track', 'page', 3, '/b', '', '', 'Googlebot', 'Other', 'US', 'crawler')")
db.query("INSERT INTO stats.webhooks (dateTime, date, service, name) VALUES (now(), today(), 'hook', 'in')")
db.query("CREATE TABLE IF NOT EXISTS stats.failed_events (id UInt64, uid UInt64, date Date, dateTime DateTime, key String, "
         "schema String, version UInt32, errors Nested(path String, rule String, message String), message String) "
         "ENGINE = MergeTree ORDER BY (key, date, id)")
db.query("INSERT INTO stats.failed_events VALUES (1, 1, today(), now(), 'in.gen.track.purchase', 'in.gen.track.purchase', 1, "
         "['data.revenue'], ['type'], ['is not a number'], '{}')")


@expose()
async def query(sql, params=None):
    try:
        result = db.query(sql.rstrip().rstrip(";") + " SETTINGS readonly=1", "JSON")
    except Exception as exc:
        raise RPCError(str(exc).splitlines()[0][:500], 400) from exc
    body = json.loads(result.bytes() or b"{}")
    return {"columns": body.get("meta", []), "rows": body.get("data", [])}
