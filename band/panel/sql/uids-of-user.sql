-- The visitors (uids) a user id was seen with (`identify` sets user.id; every later event
-- carries it as user_id). Run: band sql "$(cat examples/recipes/04-uids-of-user.sql)" user_id=<id>
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
SELECT uid, min(dateTime) AS first_seen, max(dateTime) AS last_seen
FROM stats.events
WHERE bot = '' AND user_id = {user_id:String}
GROUP BY uid
ORDER BY first_seen
