-- The visitors (uids) of a user id: by=cookie, the uids whose events carried it (`identify` sets
-- user.id; every later event carries it as user_id); by=person, every uid of their persons and of
-- the person the user id belongs to in the identity graph (stats.identities): the devices it
-- joined, also those that never carried the id. Every row says what was counted (counted_by).
-- Run: band sql "$(cat examples/recipes/04-uids-of-user.sql)" user_id=<id> by=person   (or by=cookie)
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
WITH
    {by:String} AS counted_by,
    persons AS (
        SELECT argMax(person_id, stream_seq) FROM stats.identities WHERE identifier = concat('user:', {user_id:String})
        UNION DISTINCT
        SELECT person_id FROM stats.events_people WHERE user_id = {user_id:String}
    )
SELECT toString(uid) AS uid, min(dateTime) AS first_seen, max(dateTime) AS last_seen, counted_by
FROM stats.events_people
WHERE bot = '' AND multiIf(counted_by = 'person', person_id IN persons, counted_by = 'cookie', user_id = {user_id:String},
                           throwIf(1, 'by must be person or cookie'))
GROUP BY uid
ORDER BY first_seen, uid
