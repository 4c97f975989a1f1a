-- Events and page views per session (a session is a uid and the web SDK's sess_start).
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
SELECT count() AS sessions,
       round(avg(events), 2) AS avg_events,
       quantileExact(0.5)(events) AS median_events,
       round(avg(pages), 2) AS avg_pages
FROM (
    SELECT uid, sess_start, count() AS events, countIf(name = 'page') AS pages
    FROM stats.events
    WHERE bot = '' AND date >= {since:Date} AND sess_start > 0
    GROUP BY uid, sess_start
)
