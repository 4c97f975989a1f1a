-- Page views and visitors per day (UTC dates).
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
SELECT date, count() AS views, uniq(uid) AS visitors
FROM stats.events
WHERE bot = '' AND name = 'page' AND date >= {since:Date}
GROUP BY date
ORDER BY date
