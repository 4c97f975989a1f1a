-- Where visitors came from: the referring site of each page view ((direct) when none).
SELECT if(ref = '', '(direct)', domain(ref)) AS referrer, count() AS views, uniq(uid) AS visitors
FROM (SELECT uid, if(page_ref != '', page_ref, td_ref) AS ref FROM stats.events WHERE name = 'page' AND date >= {since:Date})
GROUP BY referrer
ORDER BY visitors DESC, referrer
LIMIT {limit:UInt32}
