-- New visitors (first seen that day) and returning ones, per day.
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH firsts AS (SELECT uid, min(date) AS first_date FROM stats.events WHERE bot = '' GROUP BY uid)
SELECT e.date AS date,
       uniqIf(e.uid, f.first_date = e.date) AS new_visitors,
       uniqIf(e.uid, f.first_date < e.date) AS returning_visitors
FROM stats.events AS e
INNER JOIN firsts AS f USING (uid)
WHERE e.bot = '' AND e.date >= {since:Date}
GROUP BY date
ORDER BY date
