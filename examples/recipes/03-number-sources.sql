-- Which sources each tracked number was shown to (docs/tutorials/03-calltracking.md):
-- every show with the channel of the visitor's last session that began before it.
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH sessions AS (
    SELECT uid, timestamp AS ts,
           if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel
    FROM stats.events
    WHERE bot = '' AND name = 'session'
)
SELECT s.phone AS phone, if(v.channel = '', '(no session)', v.channel) AS channel, count() AS shows, uniqExact(s.uid) AS visitors
FROM stats.calltracking_shows AS s
ASOF LEFT JOIN sessions AS v ON v.uid = s.uid AND s.timestamp >= v.ts
GROUP BY phone, channel
ORDER BY phone, shows DESC, channel
