-- Install and in-app event postbacks from a mobile tracker, as they landed in `webhooks`
-- (docs/tutorials/01-other-services.md): every query field is in extra.key / extra.value.
-- Bots not filtered: postbacks come from the tracker's servers, whose user agents are HTTP libraries'.
SELECT dateTime, name AS event,
       extra.value[indexOf(extra.key, 'click_id')] AS click_id,
       extra.value[indexOf(extra.key, 'campaign')] AS campaign,
       extra.value[indexOf(extra.key, 'media_source')] AS media_source,
       extra.value[indexOf(extra.key, 'platform')] AS platform,
       toFloat64OrZero(extra.value[indexOf(extra.key, 'revenue')]) AS revenue
FROM stats.webhooks
WHERE service = 'postback'
ORDER BY timestamp, id
