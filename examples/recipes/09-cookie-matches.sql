-- Cookie-sync matches (docs/tutorials/09-cookie-sync.md): our uid and each partner's id
-- for the same browser, from the cookiesync steps the edge stored in webhooks. A partner
-- sends the browser back to step i+1 with its id as `pid`; partner = its place in the
-- cookiesync config (0 = the first).
-- Bots excluded: `bot = ''` leaves out the events the edge flagged as bots (docs/edge.md).
SELECT toString(uid) AS uid,
       toUInt8OrZero(extra.value[indexOf(extra.key, 'i')]) - 1 AS partner,
       argMax(extra.value[indexOf(extra.key, 'pid')], timestamp) AS partner_id,
       count() AS syncs, max(dateTime) AS last_synced
FROM stats.webhooks
WHERE bot = '' AND service = 'cookiesync' AND name = 'step'
  AND toUInt8OrZero(extra.value[indexOf(extra.key, 'i')]) >= 1 AND extra.value[indexOf(extra.key, 'pid')] != ''
GROUP BY uid, partner
ORDER BY uid, partner
