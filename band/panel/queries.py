"""The everyday questions, one click away on the Store page (ClickHouse SQL, Rockstat's schema)."""

from __future__ import annotations

SAVED: tuple[tuple[str, str], ...] = (
    ("Events today by name", "SELECT service, name, count() AS events\nFROM stats.events\nWHERE date = today()\nGROUP BY service, name\nORDER BY events DESC"),
    ("Last 50 events", "SELECT dateTime, service, name, uid, page_url\nFROM stats.events\nORDER BY dateTime DESC\nLIMIT 50"),
    ("Visitors per day, last 14 days", "SELECT date, uniq(uid) AS visitors, count() AS events\nFROM stats.events\nWHERE date >= today() - 14\nGROUP BY date\nORDER BY date"),
    ("Top pages today", "SELECT page_url, count() AS views, uniq(uid) AS visitors\nFROM stats.events\nWHERE date = today() AND name = 'page'\nGROUP BY page_url\nORDER BY views DESC\nLIMIT 20"),
    ("UTM sources of sessions, 7 days", "SELECT sess_marks_utm_source AS source, sess_marks_utm_medium AS medium, uniq(uid) AS visitors\nFROM stats.events\nWHERE date >= today() - 7 AND sess_marks_utm_source != ''\nGROUP BY source, medium\nORDER BY visitors DESC\nLIMIT 30"),
    ("Events per hour, 24 h", "SELECT toStartOfHour(dateTime) AS hour, count() AS events\nFROM stats.events\nWHERE dateTime >= now() - INTERVAL 1 DAY\nGROUP BY hour\nORDER BY hour"),
    ("Browsers and OS, 7 days", "SELECT uaparser_browser_family AS browser, uaparser_os_family AS os, uniq(uid) AS visitors\nFROM stats.events\nWHERE date >= today() - 7\nGROUP BY browser, os\nORDER BY visitors DESC\nLIMIT 20"),
    ("Countries, 7 days", "SELECT sxgeo_country_iso AS country, uniq(uid) AS visitors\nFROM stats.events\nWHERE date >= today() - 7\nGROUP BY country\nORDER BY visitors DESC\nLIMIT 20"),
)


# One visitor's history (the User page): the same SQL as examples/recipes/04-*.sql, whose
# header comments say how to run them by hand; a test keeps the two copies equal.
USER_HISTORY = """\
SELECT dateTime, session, name, page, channel, details
FROM (
    SELECT timestamp, id, dateTime, sess_num AS session, name, path(page_url) AS page,
           if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel,
           arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), data_extra.key, data_extra.value), ' ') AS details
    FROM stats.events
    WHERE uid = {uid:UInt64}
    UNION ALL
    SELECT timestamp, id, dateTime, sess_num AS session, name, path(page_url) AS page,
           if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel,
           if(name = 'scroll', concat('scrolled ', toString(scroll_ms + scroll_ch), ' of ', toString(scroll_dh), ' px'),
              arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), data_extra.key, data_extra.value), ' ')) AS details
    FROM stats.activity
    WHERE uid = {uid:UInt64}
)
ORDER BY timestamp, id
"""

UIDS_OF_USER = """\
SELECT uid, min(dateTime) AS first_seen, max(dateTime) AS last_seen
FROM stats.events
WHERE user_id = {user_id:String}
GROUP BY uid
ORDER BY first_seen
"""

__all__ = ["SAVED", "USER_HISTORY", "UIDS_OF_USER"]
