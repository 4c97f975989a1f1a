-- Markov chain of channel paths: how often each state follows each other, over all visitors.
-- Definitions: docs/tutorials/06-markov.md. A visitor's path is (start), the channel of each
-- session in time order (up to the first purchase for buyers), then (conversion) or (null).
-- Feed it to examples/recipes/markov.py for probabilities and removal effects.
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    sessions AS (
        SELECT uid, timestamp AS ts,
               if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel
        FROM stats.events
        WHERE bot = '' AND name = 'session'
    ),
    conversions AS (
        SELECT uid, min(timestamp) AS conv_ts FROM stats.events WHERE bot = '' AND name = 'purchase' GROUP BY uid
    ),
    paths AS (
        SELECT s.uid AS uid, max(c.conv_ts) > 0 AS converted,
               arrayMap(t -> t.2, arraySort(t -> t.1, groupArray((s.ts, s.channel)))) AS channels
        FROM sessions AS s
        LEFT JOIN conversions AS c ON c.uid = s.uid
        WHERE c.conv_ts = 0 OR s.ts <= c.conv_ts
        GROUP BY s.uid
    )
SELECT src, dst, count() AS transitions,
       round(transitions / sum(transitions) OVER (PARTITION BY src), 4) AS probability
FROM (
    SELECT arrayConcat(['(start)'], channels, [if(converted, '(conversion)', '(null)')]) AS states FROM paths
)
ARRAY JOIN arrayPopBack(states) AS src, arrayPopFront(states) AS dst
GROUP BY src, dst
ORDER BY src, dst
