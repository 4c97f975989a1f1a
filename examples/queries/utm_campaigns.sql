-- Campaigns by the session's UTM marks (the web SDK keeps them for the whole session).
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
SELECT sess_marks_utm_source AS source, sess_marks_utm_medium AS medium, sess_marks_utm_campaign AS campaign,
       uniq(uid) AS visitors, countIf(name = 'page') AS views
FROM stats.events
WHERE bot = '' AND date >= {since:Date} AND sess_marks_utm_source != ''
GROUP BY source, medium, campaign
ORDER BY visitors DESC, campaign
