-- The most viewed pages, by path.
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
SELECT path(page_url) AS page, count() AS views, uniq(uid) AS visitors
FROM stats.events
WHERE bot = '' AND name = 'page' AND date >= {since:Date}
GROUP BY page
ORDER BY views DESC, page
LIMIT {limit:UInt32}
