-- New visitors (first seen that day) and returning ones, per day.
-- Counted by person or by cookie, as asked: by=person joins the uids the identity graph put
-- together (stats.events_people: a visitor who logged in on a phone and a laptop is one), by=cookie
-- counts each uid alone; every row says which in counted_by (docs/tutorials/README.md).
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    {by:String} AS counted_by,
    counted AS (  -- the events, each with who it counts for: its person, or its uid
        SELECT *, multiIf(counted_by = 'person', person_id, counted_by = 'cookie', uid,
                          throwIf(1, 'by must be person or cookie')) AS who
        FROM stats.events_people
        WHERE bot = ''
    ),
    days AS (  -- one pass, no join: the days each person (or uid) was seen, and the first of them
        SELECT who, groupUniqArray(date) AS seen, arrayMin(seen) AS first_date FROM counted GROUP BY who
    )
SELECT date,
       countIf(date = first_date) AS new_visitors,
       countIf(date > first_date) AS returning_visitors,
       counted_by
FROM days
ARRAY JOIN seen AS date
WHERE date >= {since:Date}
GROUP BY date
ORDER BY date
