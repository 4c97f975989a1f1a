-- Page views and visitors per day (UTC dates).
SELECT date, count() AS views, uniq(uid) AS visitors
FROM stats.events
WHERE name = 'page' AND date >= {since:Date}
GROUP BY date
ORDER BY date
