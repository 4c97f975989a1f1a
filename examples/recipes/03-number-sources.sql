-- Which sources each tracked number was shown to (docs/tutorials/03-calltracking.md):
-- every show with the channel of the visitor's last session that began before it.
WITH sessions AS (
    SELECT uid, timestamp AS ts,
           if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel
    FROM stats.events
    WHERE name = 'session'
)
SELECT s.phone AS phone, if(v.channel = '', '(no session)', v.channel) AS channel, count() AS shows, uniqExact(s.uid) AS visitors
FROM stats.calltracking_shows AS s
ASOF LEFT JOIN sessions AS v ON v.uid = s.uid AND s.timestamp >= v.ts
GROUP BY phone, channel
ORDER BY phone, shows DESC, channel
