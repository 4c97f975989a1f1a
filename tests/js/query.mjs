// Connects to a ClickHouse HTTP endpoint with the official client, queries with
// parameters, reads JSONEachRow, and prints one JSON line: what tests/test_store_http.py checks.
import { createClient } from '@clickhouse/client'

const [url, password] = process.argv.slice(2)
const client = createClient({ url, username: 'default', password: password ?? '', compression: { response: true } })
try {
  const ping = await client.ping()
  const rs = await client.query({
    query: 'SELECT number AS n, toString(number) AS s FROM numbers({count:UInt32}) WHERE number >= {from:UInt32}',
    query_params: { count: 5, from: 2 },
    format: 'JSONEachRow',
  })
  const rows = await rs.json()
  const events = await (await client.query({ query: 'SELECT count() AS c FROM events', format: 'JSONEachRow' })).json()
  let refused = null
  try {
    await client.command({ query: 'INSERT INTO events (id) VALUES (1)' })
  } catch (err) {
    refused = { code: err.code, message: err.message }
  }
  console.log(JSON.stringify({ ping: ping.success, rows, events, refused }))
} finally {
  await client.close()
}
