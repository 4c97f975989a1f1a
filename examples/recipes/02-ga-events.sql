-- Your copy of Google Analytics: GA4 Measurement Protocol payloads the page also sent to
-- /ga/collect, one row per GA event with its parameters as columns
-- (docs/tutorials/02-google-analytics.md). The raw payload stays in stats.webhooks.
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
SELECT dateTime,
       extra.value[indexOf(extra.key, 'measurement_id')] AS measurement_id,
       extra.value[indexOf(extra.key, 'client_id')] AS client_id,
       extra.value[indexOf(extra.key, 'user_id')] AS user_id,
       JSONExtractString(ga_event, 'name') AS event,
       JSONExtractString(ga_event, 'params', 'page_location') AS page_location,
       JSONExtractString(ga_event, 'params', 'page_title') AS page_title,
       JSONExtractString(ga_event, 'params', 'session_id') AS session_id,
       JSONExtractUInt(ga_event, 'params', 'engagement_time_msec') AS engagement_time_msec,
       JSONExtractString(ga_event, 'params', 'transaction_id') AS transaction_id,
       JSONExtractFloat(ga_event, 'params', 'value') AS value,
       JSONExtractString(ga_event, 'params', 'currency') AS currency
FROM stats.webhooks
ARRAY JOIN JSONExtractArrayRaw(extra.value[indexOf(extra.key, 'events')]) AS ga_event
WHERE bot = '' AND service = 'ga' AND name = 'collect'
ORDER BY timestamp, id
