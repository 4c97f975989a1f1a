-- The shop's funnel by day: visit -> product page -> checkout -> purchase, in that order.
-- Definitions: docs/tutorials/08-funnels.md. One attempt = one visitor's day (UTC);
-- windowFunnel over the event time in ms, the window the whole day.
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH attempts AS (
    SELECT date, uid,
           windowFunnel(86400000)(timestamp,
               name = 'session',
               name = 'page' AND startsWith(path(page_url), '/product/'),
               name = 'page' AND path(page_url) = '/checkout',
               name = 'purchase') AS level
    FROM stats.events
    WHERE bot = ''
    GROUP BY date, uid
)
SELECT date,
       countIf(level >= 1) AS visits, countIf(level >= 2) AS product, countIf(level >= 3) AS checkout, countIf(level >= 4) AS purchase,
       round(product / visits, 3) AS visit_to_product, round(if(product > 0, checkout / product, NULL), 3) AS product_to_checkout,
       round(if(checkout > 0, purchase / checkout, NULL), 3) AS checkout_to_purchase, round(purchase / visits, 3) AS visit_to_purchase
FROM attempts
WHERE level >= 1
GROUP BY date
ORDER BY date
