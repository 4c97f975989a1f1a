"""The panel's SQL (ClickHouse, Rockstat's schema): the everyday questions one click away on the
Store page, and the User page's queries in sql/ (the history tutorial's recipes too)."""

from __future__ import annotations

import functools
from importlib import resources

SAVED: tuple[tuple[str, str], ...] = (
    ("Events today by name", "SELECT service, name, count() AS events\nFROM stats.events\nWHERE date = today()\nGROUP BY service, name\nORDER BY events DESC"),
    ("Last 50 events", "SELECT dateTime, service, name, uid, page_url\nFROM stats.events\nORDER BY dateTime DESC\nLIMIT 50"),
    (
        "Visitors per day, last 14 days",
        "SELECT date, uniq(uid) AS visitors, count() AS events\nFROM stats.events\nWHERE date >= today() - 14\nGROUP BY date\nORDER BY date",
    ),
    (
        "Top pages today",
        "SELECT page_url, count() AS views, uniq(uid) AS visitors\n"
        "FROM stats.events\nWHERE date = today() AND name = 'page'\nGROUP BY page_url\nORDER BY views DESC\nLIMIT 20",
    ),
    (
        "UTM sources of sessions, 7 days",
        "SELECT sess_marks_utm_source AS source, sess_marks_utm_medium AS medium, uniq(uid) AS visitors\n"
        "FROM stats.events\nWHERE date >= today() - 7 AND sess_marks_utm_source != ''\nGROUP BY source, medium\nORDER BY visitors DESC\nLIMIT 30",
    ),
    (
        "Events per hour, 24 h",
        "SELECT toStartOfHour(dateTime) AS hour, count() AS events\nFROM stats.events\nWHERE dateTime >= now() - INTERVAL 1 DAY\nGROUP BY hour\nORDER BY hour",
    ),
    (
        "Browsers and OS, 7 days",
        "SELECT uaparser_browser_family AS browser, uaparser_os_family AS os, uniq(uid) AS visitors\n"
        "FROM stats.events\nWHERE date >= today() - 7\nGROUP BY browser, os\nORDER BY visitors DESC\nLIMIT 20",
    ),
    (
        "Countries, 7 days",
        "SELECT sxgeo_country_iso AS country, uniq(uid) AS visitors\n"
        "FROM stats.events\nWHERE date >= today() - 7\nGROUP BY country\nORDER BY visitors DESC\nLIMIT 20",
    ),
)



@functools.cache
def sql(name: str) -> str:
    """The text of ``band/panel/sql/<name>.sql``, read when first asked for. ``user-history``
    (``{uid:UInt64}``) and ``uids-of-user`` (``{user_id:String}``) are also the tutorial's
    recipes: examples/recipes/04-*.sql link to these files."""
    return (resources.files(__package__) / "sql" / f"{name}.sql").read_text(encoding="utf-8")


__all__ = ["SAVED", "sql"]
