-- Visitor segments: recency / frequency / monetary scores and behaviour rules, one row per
-- visitor (uid), scored over everything their person did (docs/tutorials/10-segments.md): a uid
-- gets its person's segment, so every device of a person is greeted the same way.
-- "Now" is the newest event in the store.
-- Counted by person or by cookie, as asked: by=person joins the uids the identity graph put
-- together (stats.events_people: a visitor who logged in on a phone and a laptop is one), by=cookie
-- counts each uid alone; every row says which in counted_by (docs/tutorials/README.md).
-- Run: band sql "$(cat examples/recipes/10-segments.sql)" by=person   (or by=cookie)
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    (SELECT max(timestamp) FROM stats.events WHERE bot = '') AS as_of,
    {by:String} AS counted_by,
    counted AS (  -- the events, each with who it counts for: its person, or its uid
        SELECT *, multiIf(counted_by = 'person', person_id, counted_by = 'cookie', uid,
                          throwIf(1, 'by must be person or cookie')) AS who
        FROM stats.events_people
        WHERE bot = ''
    ),
    visitors AS (
        SELECT who,
               groupUniqArray(uid) AS uids,
               (as_of - max(timestamp)) / 86400000 AS age_days,
               countIf(name = 'session') AS sessions,
               countIf(name = 'purchase') AS purchases,
               sumIf(toFloat64OrZero(data_extra.value[indexOf(data_extra.key, 'revenue')]), name = 'purchase') AS revenue,
               countIf(name = 'page' AND path(page_url) = '/checkout') AS checkouts,
               countIf(name = 'form_submit') AS leads
        FROM counted
        GROUP BY who
    )
-- the scores read the exact age_days: a rounded alias named like the column would shadow it
SELECT toString(uid) AS uid, toString(who) AS person_id, counted_by, round(age_days, 2) AS days_since, sessions, purchases, revenue,
       multiIf(age_days <= 2, 3, age_days <= 7, 2, 1) AS r,
       multiIf(sessions >= 4, 3, sessions >= 2, 2, 1) AS f,
       multiIf(revenue >= 149, 3, revenue > 0, 2, 1) AS m,
       concat('R', toString(r), 'F', toString(f), 'M', toString(m)) AS rfm,
       multiIf(m >= 2 AND r >= 2 AND f >= 2, 'champion',
               m >= 2, 'buyer',
               checkouts > 0, 'cart_abandoner',
               leads > 0, 'lead',
               f >= 2 AND r = 1, 'at_risk',
               f = 1 AND r >= 2, 'new',
               'visitor') AS segment
FROM visitors
ARRAY JOIN uids AS uid
ORDER BY uid
