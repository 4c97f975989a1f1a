-- Attribution by activity index: each session on a buyer's path gets a share of the sale in
-- proportion to how engaged it was. Definitions: docs/tutorials/07-activity-index.md.
--   index = 1 + min(duration_s / 300, 1) + scroll depth + min(activity events / 5, 1)
--   duration_s: first to last event of the session (events and activity tables);
--   scroll depth: max over scroll events of min((scroll_ms + scroll_ch) / scroll_dh, 1), else 0.
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    session_events AS (
        SELECT uid, sess_num, timestamp, name, scroll_ms, scroll_ch, scroll_dh FROM stats.events WHERE bot = ''
        UNION ALL
        SELECT uid, sess_num, timestamp, name, scroll_ms, scroll_ch, scroll_dh FROM stats.activity WHERE bot = ''
    ),
    engagement AS (
        SELECT uid, sess_num,
               (max(timestamp) - min(timestamp)) / 1000 AS duration_s,
               max(if(name = 'scroll' AND scroll_dh > 0, least((scroll_ms + scroll_ch) / scroll_dh, 1), 0)) AS depth,
               countIf(name = 'activity') AS activity_events,
               1 + least(duration_s / 300, 1) + depth + least(activity_events / 5, 1) AS activity_index
        FROM session_events
        GROUP BY uid, sess_num
    ),
    sessions AS (
        SELECT e.uid AS uid, e.timestamp AS ts,
               if(e.sess_marks_utm_source != '', concat(e.sess_marks_utm_source, ' / ', e.sess_marks_utm_medium), e.sess_type) AS channel,
               e.sess_marks_utm_campaign AS campaign, g.activity_index AS activity_index
        FROM stats.events AS e
        INNER JOIN engagement AS g ON g.uid = e.uid AND g.sess_num = e.sess_num
        WHERE e.bot = '' AND e.name = 'session'
    ),
    conversions AS (
        SELECT uid, min(timestamp) AS conv_ts,
               argMin(toFloat64OrZero(data_extra.value[indexOf(data_extra.key, 'revenue')]), timestamp) AS revenue
        FROM stats.events
        WHERE bot = '' AND name = 'purchase'
        GROUP BY uid
    ),
    touches AS (
        SELECT s.channel AS channel, s.campaign AS campaign, c.revenue AS revenue,
               s.activity_index / sum(s.activity_index) OVER (PARTITION BY s.uid) AS share
        FROM sessions AS s
        INNER JOIN conversions AS c ON c.uid = s.uid
        WHERE s.ts <= c.conv_ts
    )
SELECT channel, if(campaign = '', '(none)', campaign) AS campaign,
       count() AS touches, round(sum(share), 2) AS conversions, round(sum(share * revenue), 2) AS revenue
FROM touches
GROUP BY channel, campaign
ORDER BY revenue DESC, channel, campaign
