-- Calls joined to the visitor the number was shown to and that visitor's session
-- (docs/tutorials/03-calltracking.md): telephony's /calltracking/who hits (in webhooks),
-- the last show of the number before the call (calltracking_shows), the visitor's last
-- session that began before the call, with its channel and UTM marks.
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    calls AS (
        SELECT timestamp AS ts, dateTime,
               extra.value[indexOf(extra.key, 'number')] AS number,
               extra.value[indexOf(extra.key, 'caller')] AS caller
        FROM stats.webhooks
        WHERE service = 'calltracking' AND name = 'who'  -- the telephony's server: never filtered as a bot
    ),
    shows AS (SELECT phone, timestamp AS ts, uid FROM stats.calltracking_shows),
    sessions AS (
        SELECT uid, timestamp AS ts,
               if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel,
               sess_marks_utm_source AS utm_source, sess_marks_utm_campaign AS utm_campaign, path(page_url) AS landing
        FROM stats.events
        WHERE bot = '' AND name = 'session'
    ),
    called AS (
        SELECT c.dateTime AS dateTime, c.ts AS ts, c.number AS number, c.caller AS caller, s.uid AS uid
        FROM calls AS c
        ASOF LEFT JOIN shows AS s ON s.phone = c.number AND c.ts >= s.ts
    )
SELECT k.dateTime AS dateTime, k.number AS number, k.caller AS caller, toString(k.uid) AS visitor,
       v.channel AS channel, v.utm_source AS utm_source, v.utm_campaign AS utm_campaign, v.landing AS landing
FROM called AS k
ASOF LEFT JOIN sessions AS v ON v.uid = k.uid AND k.ts >= v.ts
ORDER BY k.ts, k.number
