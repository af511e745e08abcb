// A small NIP-01 relay for interop tests: `node relay.mjs <port>`, listens on 127.0.0.1 only. As a module,
// `startRelay(port, onFrame?)` runs one in-process (gen_vectors.mjs records the frames it receives).
//
// EVENT (id + BIP-340 signature verified, OK sent), REQ (stored matches, EOSE, then live), CLOSE (CLOSED not sent).
// Accepts the nested-array filter form `["REQ", id, [ {filter} ]]` that nostr-p2p sends (spec §5.5).
// Ephemeral kinds (20000-29999) are fanned out but not stored. Prints {"listening": true, "port": n} when up.
import { WebSocketServer } from 'ws'
import { pathToFileURL } from 'node:url'
import { verifyEvent } from 'nostr-tools/pure'

const MAX_STORED = 10000

function matches (f, ev) {
  if (f.ids && !f.ids.includes(ev.id)) return false
  if (f.authors && !f.authors.includes(ev.pubkey)) return false
  if (f.kinds && !f.kinds.includes(ev.kind)) return false
  if (f.since !== undefined && ev.created_at < f.since) return false
  if (f.until !== undefined && ev.created_at > f.until) return false
  for (const [key, values] of Object.entries(f)) {
    if (key[0] !== '#' || key.length !== 2 || !Array.isArray(values)) continue
    if (!ev.tags.some((t) => t[0] === key[1] && values.includes(t[1]))) return false
  }
  return true
}

// Filters from a REQ: standard `f1, f2, …`, or the quirk `[f1, …]` in one array.
const flattenFilters = (parts) => parts.flat().filter((f) => f && typeof f === 'object' && !Array.isArray(f))

const send = (ws, msg) => { if (ws.readyState === 1) ws.send(JSON.stringify(msg)) }

// Resolves to the listening WebSocketServer; `onFrame(msg)` sees every well-formed client frame first.
export function startRelay (port, onFrame = () => {}) {
  const stored = []
  const subs = new Map() // ws -> Map(subid -> filters[])

  function onEvent (ws, ev) {
    let valid = false
    try { valid = verifyEvent(ev) } catch { valid = false }
    if (!valid) return send(ws, ['OK', ev?.id ?? '', false, 'invalid: bad id or signature'])
    const ephemeral = ev.kind >= 20000 && ev.kind < 30000
    if (!ephemeral) {
      if (stored.some((e) => e.id === ev.id)) return send(ws, ['OK', ev.id, true, 'duplicate: already have it'])
      stored.push(ev)
      if (stored.length > MAX_STORED) stored.shift()
    }
    send(ws, ['OK', ev.id, true, ''])
    for (const [client, table] of subs) {
      for (const [subid, filters] of table) {
        if (filters.some((f) => matches(f, ev))) send(client, ['EVENT', subid, ev])
      }
    }
  }

  function onReq (ws, subid, filters) {
    subs.get(ws).set(subid, filters)
    for (const f of filters) {
      let hits = stored.filter((ev) => matches(f, ev)).sort((a, b) => b.created_at - a.created_at)
      if (f.limit !== undefined) hits = hits.slice(0, f.limit)
      for (const ev of hits) send(ws, ['EVENT', subid, ev])
    }
    send(ws, ['EOSE', subid])
  }

  const wss = new WebSocketServer({ host: '127.0.0.1', port })
  wss.on('connection', (ws) => {
    subs.set(ws, new Map())
    ws.on('message', (raw) => {
      let msg
      try { msg = JSON.parse(raw.toString()) } catch { return send(ws, ['NOTICE', 'invalid: bad JSON']) }
      if (!Array.isArray(msg)) return send(ws, ['NOTICE', 'invalid: not an array'])
      onFrame(msg)
      const [type, ...rest] = msg
      if (type === 'EVENT' && rest[0] && typeof rest[0] === 'object') return onEvent(ws, rest[0])
      if (type === 'REQ' && typeof rest[0] === 'string') return onReq(ws, rest[0], flattenFilters(rest.slice(1)))
      if (type === 'CLOSE' && typeof rest[0] === 'string') return subs.get(ws).delete(rest[0])
      send(ws, ['NOTICE', 'invalid: unknown message'])
    })
    ws.on('close', () => subs.delete(ws))
    ws.on('error', () => subs.delete(ws))
  })
  return new Promise((resolve, reject) => {
    wss.once('listening', () => resolve(wss))
    wss.once('error', reject)
  })
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let wss
  try {
    wss = await startRelay(Number(process.argv[2] ?? 0))
  } catch (err) {
    process.stdout.write(JSON.stringify({ listening: false, err: err.message }) + '\n')
    process.exit(1)
  }
  process.stdout.write(JSON.stringify({ listening: true, port: wss.address().port }) + '\n')
  const stop = () => {
    for (const client of wss.clients) client.terminate()
    wss.close(() => process.exit(0))
    setTimeout(() => process.exit(0), 1000).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
