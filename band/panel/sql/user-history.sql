-- One visitor's history: every event of a uid's person (every device the identity graph joined
-- to it; by=cookie: of that uid alone), sessions numbered per device, in time order
-- (docs/tutorials/04-user-history.md). Every row says which device (uid) and what was counted (counted_by).
-- Run: band sql "$(cat examples/recipes/04-user-history.sql)" uid=<uid> by=person   (or by=cookie)
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    {by:String} AS counted_by,
    (SELECT any(person_id) FROM stats.events_people WHERE uid = {uid:UInt64}) AS person,
    devices AS (
        SELECT DISTINCT uid FROM stats.events_people
        WHERE multiIf(counted_by = 'person', person_id = person, counted_by = 'cookie', uid = {uid:UInt64},
                      throwIf(1, 'by must be person or cookie'))
    )
SELECT toString(uid) AS uid, dateTime, session, name, page, channel, details, counted_by
FROM (
    SELECT uid, timestamp, id, dateTime, sess_num AS session, name, path(page_url) AS page,
           if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel,
           arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), data_extra.key, data_extra.value), ' ') AS details
    FROM stats.events
    WHERE bot = '' AND uid IN devices
    UNION ALL
    SELECT uid, timestamp, id, dateTime, sess_num AS session, name, path(page_url) AS page,
           if(sess_marks_utm_source != '', concat(sess_marks_utm_source, ' / ', sess_marks_utm_medium), sess_type) AS channel,
           if(name = 'scroll', concat('scrolled ', toString(scroll_ms + scroll_ch), ' of ', toString(scroll_dh), ' px'),
              arrayStringConcat(arrayMap((k, v) -> concat(k, '=', v), data_extra.key, data_extra.value), ' ')) AS details
    FROM stats.activity
    WHERE bot = '' AND uid IN devices
)
ORDER BY timestamp, id
