-- Cost per campaign joined with the sessions and sales it bought
-- (docs/tutorials/01-other-services.md). Costs: the ad_costs table (examples/recipes/store.yml);
-- sessions and purchases by the UTM source and campaign of the session they happened in.
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    costs AS (
        SELECT source, campaign, sum(clicks) AS clicks, sum(cost) AS cost
        FROM stats.ad_costs GROUP BY source, campaign
    ),
    visits AS (
        SELECT sess_marks_utm_source AS source, sess_marks_utm_campaign AS campaign,
               countIf(name = 'session') AS sessions, countIf(name = 'purchase') AS purchases,
               sumIf(toFloat64OrZero(data_extra.value[indexOf(data_extra.key, 'revenue')]), name = 'purchase') AS revenue
        FROM stats.events
        WHERE bot = '' AND sess_marks_utm_campaign != '' AND name IN ('session', 'purchase')
        GROUP BY source, campaign
    )
SELECT c.source AS source, c.campaign AS campaign, c.clicks AS clicks, v.sessions AS sessions,
       round(c.cost, 2) AS cost, v.purchases AS purchases, round(v.revenue, 2) AS revenue,
       round(c.cost / v.sessions, 2) AS cost_per_session,
       round(if(v.purchases > 0, c.cost / v.purchases, NULL), 2) AS cost_per_purchase,
       round(v.revenue / c.cost, 2) AS roas
FROM costs AS c
LEFT JOIN visits AS v ON v.source = c.source AND v.campaign = c.campaign
ORDER BY cost DESC, source, campaign
