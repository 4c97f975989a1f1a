-- Where visitors came from: the referring site of each page view ((direct) when none).
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
SELECT if(ref = '', '(direct)', domain(ref)) AS referrer, count() AS views, uniq(uid) AS visitors
FROM (SELECT uid, if(page_ref != '', page_ref, td_ref) AS ref FROM stats.events WHERE bot = '' AND name = 'page' AND date >= {since:Date})
GROUP BY referrer
ORDER BY visitors DESC, referrer
LIMIT {limit:UInt32}
