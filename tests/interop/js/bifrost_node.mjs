// A live reference node (@frostr/bifrost 1.0.7 BifrostNode) driven over stdin/stdout with JSON lines.
//
// stdin line 1 : {"group": bfgroup1…|GroupPackage, "share": bfshare1…|SharePackage, "relays": [url…],
//                 "policies"?: [{pubkey, policy: {send, recv}}], "debug"?: bool, "ready_timeout"?: ms}
// stdout       : {"ready": true, "pubkey": <x-only hex>, "peers": [...]}   or {"ready": false, "err": "..."}
// then per stdin line {"id", "op", ...args} one stdout line {"id", "ok": true, "data"} | {"id", "ok": false, "err"}
//   ops: ping {pubkey} · echo {challenge} · sign {message: hex32 | [[sighash, ...tweaks], ...], peers?, stamp?,
//        content?, type?} · ecdh {ecdh_pk, peers?} · status {} · set_policy {pubkey, send, recv}
//        · sign_bench {rounds, concurrency?, peers?} → [latency ms, ...]
// node events are forwarded as {"event": name, "tag"?, "id"?, "from"?, "reason"?} lines.
// The process closes the node and exits when stdin closes.
import { createInterface } from 'node:readline'
import { randomBytes } from 'node:crypto'

// Node 20 has no global WebSocket; nostr-tools captures it at import time, so shim before importing.
globalThis.WebSocket = (await import('ws')).WebSocket
const { BifrostNode, PackageEncoder } = await import('@frostr/bifrost')

const write = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const errText = (err) => (err instanceof Error ? err.message : String(err))

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
const iter = lines[Symbol.asyncIterator]()
const first = await iter.next()
if (first.done) process.exit(2)

let node
try {
  const cfg = JSON.parse(first.value)
  const group = typeof cfg.group === 'string' ? PackageEncoder.group.decode(cfg.group) : cfg.group
  const share = typeof cfg.share === 'string' ? PackageEncoder.share.decode(cfg.share) : cfg.share
  node = new BifrostNode(group, share, cfg.relays, { policies: cfg.policies ?? [], debug: cfg.debug ?? false })
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timeout waiting for ready')), cfg.ready_timeout ?? 10000)
    node.once('ready', () => { clearTimeout(timer); resolve() })
  })
  await node.connect()
  await ready
} catch (err) {
  write({ ready: false, err: errText(err) })
  process.exit(1)
}

// Forward node events in a small, circular-free shape (SignedMessage payloads carry tag/id/author).
const brief = (x) => (x && typeof x === 'object' && x.env ? { tag: x.tag, id: x.id, from: x.env.pubkey } : {})
node.on('*', (name, payload) => {
  if (name === 'ready' || name === 'closed') return write({ event: name })
  const out = { event: name }
  if (Array.isArray(payload)) {
    if (typeof payload[0] === 'string') out.reason = payload[0]
    Object.assign(out, brief(payload[1] ?? payload[0]))
  } else {
    Object.assign(out, brief(payload))
  }
  write(out)
})

const peers = () => node.peers.map((p) => ({ pubkey: p.pubkey, policy: p.policy, status: p.status }))
write({ ready: true, pubkey: node.pubkey, peers: peers() })

const OPS = {
  ping: ({ pubkey }) => node.req.ping(pubkey),
  echo: ({ challenge }) => node.req.echo(challenge),
  sign: ({ message, peers, stamp, content, type }) => {
    const opts = {}
    if (peers !== undefined) opts.peers = peers
    if (stamp !== undefined) opts.stamp = stamp
    if (content !== undefined) opts.content = content
    if (type !== undefined) opts.type = type
    return node.req.sign(message, opts)
  },
  ecdh: ({ ecdh_pk, peers }) => node.req.ecdh(ecdh_pk, peers),
  status: async () => ({ ok: true, data: { pubkey: node.pubkey, is_ready: node.is_ready, peers: peers() } }),
  // Timed signing loop for bench/sign_bench.py: `rounds` fresh random sighashes split over `concurrency`
  // requesters, each timed with performance.now() around req.sign (no stdin/stdout IPC in the figure).
  sign_bench: async ({ rounds, concurrency = 1, peers }) => {
    const latencies = []
    let left = rounds
    const worker = async () => {
      while (left > 0) {
        left -= 1
        const t0 = performance.now()
        const res = await node.req.sign(randomBytes(32).toString('hex'), peers ? { peers } : {})
        if (!res.ok) throw new Error('sign failed: ' + res.err)
        latencies.push(performance.now() - t0)
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    return { ok: true, data: latencies }
  },
  set_policy: async ({ pubkey, send, recv }) => {
    node.update_peer({ pubkey, policy: { send, recv } })
    return { ok: true, data: peers() }
  },
}

async function handle (line) {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch {
    return write({ id: null, ok: false, err: 'bad JSON command' })
  }
  const fn = OPS[cmd.op]
  if (fn === undefined) return write({ id: cmd.id, ok: false, err: 'unknown op: ' + cmd.op })
  try {
    const res = await fn(cmd)
    write(res.ok ? { id: cmd.id, ok: true, data: res.data ?? null } : { id: cmd.id, ok: false, err: res.err })
  } catch (err) {
    write({ id: cmd.id, ok: false, err: errText(err) })
  }
}

// Commands run concurrently: a test may sign and ping at once.
for await (const line of { [Symbol.asyncIterator]: () => iter }) {
  if (line.trim() !== '') void handle(line)
}
await node.close()
setTimeout(() => process.exit(0), 200)
