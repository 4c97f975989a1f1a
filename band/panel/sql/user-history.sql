-- One visitor's history: every event of a uid, sessions numbered, in time order
-- (docs/tutorials/04-user-history.md). Run: band sql "$(cat examples/recipes/04-user-history.sql)" uid=<uid>
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
SELECT dateTime, session, name, page, channel, details
FROM (
    SELECT timestamp, id, dateTime, sess_num AS session, name, path(page_url) AS page,
           if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel,
           arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), data_extra.key, data_extra.value), ' ') AS details
    FROM stats.events
    WHERE bot = '' AND uid = {uid:UInt64}
    UNION ALL
    SELECT timestamp, id, dateTime, sess_num AS session, name, path(page_url) AS page,
           if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel,
           if(name = 'scroll', concat('scrolled ', toString(scroll_ms + scroll_ch), ' of ', toString(scroll_dh), ' px'),
              arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), data_extra.key, data_extra.value), ' ')) AS details
    FROM stats.activity
    WHERE bot = '' AND uid = {uid:UInt64}
)
ORDER BY timestamp, id
