-- The shop's funnel by day: visit -> product page -> checkout -> purchase, in that order.
-- Definitions: docs/tutorials/08-funnels.md. One attempt = one person's (or uid's) day (UTC);
-- windowFunnel over the event time in ms, the window the whole day.
-- Counted by person or by cookie, as asked: by=person joins the uids the identity graph put
-- together (stats.events_people: a visitor who logged in on a phone and a laptop is one), by=cookie
-- counts each uid alone; every row says which in counted_by (docs/tutorials/README.md).
-- Run: band sql "$(cat examples/recipes/08-funnel-by-day.sql)" by=person   (or by=cookie)
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    {by:String} AS counted_by,
    counted AS (  -- the events, each with who it counts for: its person, or its uid
        SELECT *, multiIf(counted_by = 'person', person_id, counted_by = 'cookie', uid,
                          throwIf(1, 'by must be person or cookie')) AS who
        FROM stats.events_people
        WHERE bot = ''
    ),
    attempts AS (
        SELECT date, who,
               windowFunnel(86400000)(timestamp,
                   name = 'session',
                   name = 'page' AND startsWith(path(page_url), '/product/'),
                   name = 'page' AND path(page_url) = '/checkout',
                   name = 'purchase') AS level
        FROM counted
        GROUP BY date, who
    )
SELECT counted_by, date,
       countIf(level >= 1) AS visits, countIf(level >= 2) AS product, countIf(level >= 3) AS checkout, countIf(level >= 4) AS purchase,
       round(product / visits, 3) AS visit_to_product, round(if(product > 0, checkout / product, NULL), 3) AS product_to_checkout,
       round(if(checkout > 0, purchase / checkout, NULL), 3) AS checkout_to_purchase, round(purchase / visits, 3) AS visit_to_purchase
FROM attempts
WHERE level >= 1
GROUP BY date
ORDER BY date
