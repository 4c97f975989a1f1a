-- The devices (uids) of a person with when each was first and last seen in the events and the
-- activity, and how many events it sent: the User page's device list (bots left out: `bot = ''`).
SELECT toString(uid) AS uid, toString(min(dateTime)) AS first_seen, toString(max(dateTime)) AS last_seen, count() AS events
FROM (
    SELECT uid, dateTime FROM stats.events WHERE bot = '' AND uid IN {uids:Array(UInt64)}
    UNION ALL
    SELECT uid, dateTime FROM stats.activity WHERE bot = '' AND uid IN {uids:Array(UInt64)}
)
GROUP BY uid
