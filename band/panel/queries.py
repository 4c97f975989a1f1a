"""The panel's SQL (ClickHouse, Rockstat's schema): the everyday questions one click away on the
Store page, and the User page's queries in sql/ (the history tutorial's recipes too)."""

from __future__ import annotations

import functools
from importlib import resources

# Bots excluded (`bot = ''`): the events the edge flagged as bots are left out; the last query counts them.
SAVED: tuple[tuple[str, str], ...] = (
    ("Events today by name",
     "SELECT service, name, count() AS events\n"
     "FROM stats.events\n"
     "WHERE date = today() AND bot = ''  -- bots excluded\n"
     "GROUP BY service, name\n"
     "ORDER BY events DESC"),
    ("Last 50 events", "SELECT dateTime, service, name, uid, page_url, bot\nFROM stats.events\nORDER BY dateTime DESC\nLIMIT 50"),
    ("Visitors per day, last 14 days",
     "SELECT date, uniq(uid) AS visitors, count() AS events\n"
     "FROM stats.events\n"
     "WHERE date >= today() - 14 AND bot = ''  -- bots excluded\n"
     "GROUP BY date\n"
     "ORDER BY date"),
    ("Top pages today",
     "SELECT page_url, count() AS views, uniq(uid) AS visitors\n"
     "FROM stats.events\n"
     "WHERE date = today() AND name = 'page' AND bot = ''  -- bots excluded\n"
     "GROUP BY page_url\n"
     "ORDER BY views DESC\n"
     "LIMIT 20"),
    ("UTM sources of sessions, 7 days",
     "SELECT sess_marks_utm_source AS source, sess_marks_utm_medium AS medium, uniq(uid) AS visitors\n"
     "FROM stats.events\n"
     "WHERE date >= today() - 7 AND sess_marks_utm_source != '' AND bot = ''  -- bots excluded\n"
     "GROUP BY source, medium\n"
     "ORDER BY visitors DESC\n"
     "LIMIT 30"),
    ("Events per hour, 24 h",
     "SELECT toStartOfHour(dateTime) AS hour, count() AS events\n"
     "FROM stats.events\n"
     "WHERE dateTime >= now() - INTERVAL 1 DAY AND bot = ''  -- bots excluded\n"
     "GROUP BY hour\n"
     "ORDER BY hour"),
    ("Browsers and OS, 7 days",
     "SELECT uaparser_browser_family AS browser, uaparser_os_family AS os, uniq(uid) AS visitors\n"
     "FROM stats.events\n"
     "WHERE date >= today() - 7 AND bot = ''  -- bots excluded\n"
     "GROUP BY browser, os\n"
     "ORDER BY visitors DESC\n"
     "LIMIT 20"),
    ("Countries, 7 days",
     "SELECT sxgeo_country_iso AS country, uniq(uid) AS visitors\n"
     "FROM stats.events\n"
     "WHERE date >= today() - 7 AND bot = ''  -- bots excluded\n"
     "GROUP BY country\n"
     "ORDER BY visitors DESC\n"
     "LIMIT 20"),
    ("Bots by reason, 7 days",
     "SELECT bot AS reason, count() AS events, uniq(uid) AS uids\n"
     "FROM stats.events\n"
     "WHERE date >= today() - 7 AND bot != ''\n"
     "GROUP BY reason\n"
     "ORDER BY events DESC"),
    ("Failed events by key and error, 7 days",
     "SELECT key, schema, version, path, rule, count() AS events, any(message) AS example\n"
     "FROM stats.failed_events\n"
     "ARRAY JOIN errors.path AS path, errors.rule AS rule\n"
     "WHERE date >= today() - 7  -- refused by a schema in enforce mode; band store replay-failed after a fix\n"
     "GROUP BY key, schema, version, path, rule\n"
     "ORDER BY events DESC\n"
     "LIMIT 50"),
)



@functools.cache
def sql(name: str) -> str:
    """The text of ``band/panel/sql/<name>.sql``, read when first asked for. ``user-history``
    (``{uid:UInt64}``) and ``uids-of-user`` (``{user_id:String}``) are also the tutorial's
    recipes: examples/recipes/04-*.sql link to these files."""
    return (resources.files(__package__) / "sql" / f"{name}.sql").read_text(encoding="utf-8")


__all__ = ["SAVED", "sql"]
