-- Attribution models side by side: conversions (c_*) and revenue (r_*) credited to each
-- channel and campaign under six models. Definitions: docs/tutorials/05-attribution.md.
-- A touch is a session (its `session` event); channel = 'utm_source / utm_medium' if the
-- session has marks, else the SDK's sess_type; the conversion is the buyer's first `purchase`; its path is the
-- buyer's sessions, on any of their devices, that began at or before it. Time decay half-life: 7 days.
-- Counted by person or by cookie, as asked: by=person joins the uids the identity graph put
-- together (stats.events_people: a visitor who logged in on a phone and a laptop is one), by=cookie
-- counts each uid alone; every row says which in counted_by (docs/tutorials/README.md).
-- Run: band sql "$(cat examples/recipes/05-attribution.sql)" by=person   (or by=cookie)
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    7 * 86400000 AS half_life_ms,
    {by:String} AS counted_by,
    counted AS (  -- the events, each with who it counts for: its person, or its uid
        SELECT *, multiIf(counted_by = 'person', person_id, counted_by = 'cookie', uid,
                          throwIf(1, 'by must be person or cookie')) AS who
        FROM stats.events_people
        WHERE bot = ''
    ),
    buyers AS (  -- one pass over the events, no join: each buyer's first purchase and every session
        SELECT who,
               minIf(timestamp, name = 'purchase') AS conv_ts,
               argMinIf(toFloat64OrZero(data_extra.value[indexOf(data_extra.key, 'revenue')]), timestamp, name = 'purchase') AS revenue,
               groupArrayIf((timestamp,
                             if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type),
                             sess_marks_utm_campaign), name = 'session') AS sessions
        FROM counted
        WHERE name IN ('session', 'purchase')
        GROUP BY who
        HAVING countIf(name = 'purchase') > 0
    ),
    paths AS (
        SELECT who, conv_ts, revenue, arraySort(t -> t.1, arrayFilter(t -> t.1 <= conv_ts, sessions)) AS touches
        FROM buyers
        WHERE length(touches) > 0
    ),
    credited AS (
        SELECT revenue, touch.2 AS channel, touch.3 AS campaign,
               first_c, last_c, lnd_c, linear_c, decay_c, position_c
        FROM (
            SELECT revenue, touches, length(touches) AS n, arrayEnumerate(touches) AS idx,
                   if(arrayLastIndex(t -> t.2 != 'direct', touches) = 0, n, arrayLastIndex(t -> t.2 != 'direct', touches)) AS lnd_at,
                   arrayMap(t -> exp2(-(toFloat64(conv_ts) - toFloat64(t.1)) / half_life_ms), touches) AS w,
                   arrayMap(i -> toFloat64(i = 1), idx) AS first_cs,
                   arrayMap(i -> toFloat64(i = n), idx) AS last_cs,
                   arrayMap(i -> toFloat64(i = lnd_at), idx) AS lnd_cs,
                   arrayMap(i -> 1 / n, idx) AS linear_cs,
                   arrayMap(x -> x / arraySum(w), w) AS decay_cs,
                   arrayMap(i -> multiIf(n = 1, 1., n = 2, 0.5, i = 1 OR i = n, 0.4, 0.2 / (n - 2)), idx) AS position_cs
            FROM paths
        )
        ARRAY JOIN touches AS touch, first_cs AS first_c, last_cs AS last_c, lnd_cs AS lnd_c,
                   linear_cs AS linear_c, decay_cs AS decay_c, position_cs AS position_c
    )
SELECT counted_by, channel, if(campaign = '', '(none)', campaign) AS campaign,
       round(sum(first_c), 2) AS c_first, round(sum(last_c), 2) AS c_last, round(sum(lnd_c), 2) AS c_last_non_direct,
       round(sum(linear_c), 2) AS c_linear, round(sum(decay_c), 2) AS c_time_decay, round(sum(position_c), 2) AS c_position,
       round(sum(first_c * revenue), 2) AS r_first, round(sum(last_c * revenue), 2) AS r_last,
       round(sum(lnd_c * revenue), 2) AS r_last_non_direct, round(sum(linear_c * revenue), 2) AS r_linear,
       round(sum(decay_c * revenue), 2) AS r_time_decay, round(sum(position_c * revenue), 2) AS r_position
FROM credited
GROUP BY channel, campaign
ORDER BY r_last_non_direct DESC, channel, campaign
