-- The most viewed pages, by path.
SELECT path(page_url) AS page, count() AS views, uniq(uid) AS visitors
FROM stats.events
WHERE name = 'page' AND date >= {since:Date}
GROUP BY page
ORDER BY views DESC, page
LIMIT {limit:UInt32}
