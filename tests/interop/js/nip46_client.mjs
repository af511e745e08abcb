// A NIP-46 client made of nostr-tools 2.25.2's BunkerSigner, driven over stdin/stdout with JSON lines.
//
// Per stdin line {"id", "op", ...args} one stdout line {"id", "ok": true, "data", "ms"} | {"id", "ok": false, "err", "ms"}.
//   bunker {uri, secret_key?, metadata?}        parseBunkerInput + BunkerSigner.fromBunker + connect(metadata)
//   open {uri, secret_key}                      fromBunker without connect (a client restarting, or a stranger)
//   nostrconnect_uri {relays, perms?, name?}     createNostrConnectURI with a fresh client key → {uri, pubkey}
//   nostrconnect_listen {timeout?}               BunkerSigner.fromURI on that URI; returns once its subscription
//                                                is open on every relay (the URI can then be handed over)
//   nostrconnect_wait                            the signer of nostrconnect_listen, once the remote signer answered
//   connect {secret?}                            connect() again (what clients do on every start)
//   get_public_key · ping · switch_relays · logout · relays
//   sign {template}                              signEvent → the event (verifyEvent checked here too)
//   nip44_encrypt|nip44_decrypt|nip04_encrypt|nip04_decrypt {peer, text}
//   raw {method, params, timeout?}               sendRequest as is (unknown methods)
//   plain {scheme, mode, secret_key, peer, text} plain nostr-tools nip44/nip04 with a local key (the third party)
//   verify {event}                               verifyEvent
// Every call is bounded (sendRequest itself never times out). The process exits when stdin closes.
import { createInterface } from 'node:readline'

// Node 20 has no global WebSocket; nostr-tools captures it at import time, so shim before importing.
globalThis.WebSocket = (await import('ws')).WebSocket
const { BunkerSigner, parseBunkerInput, createNostrConnectURI } = await import('nostr-tools-2.25/nip46')
const { generateSecretKey, getPublicKey, verifyEvent } = await import('nostr-tools-2.25/pure')
const nip44 = await import('nostr-tools-2.25/nip44')
const nip04 = await import('nostr-tools-2.25/nip04')
const { hexToBytes, bytesToHex } = await import('nostr-tools-2.25/utils')
const { SimplePool } = await import('nostr-tools-2.25/pool')

const write = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const errText = (err) => (err instanceof Error ? err.message : String(err))
const DEFAULT_TIMEOUT = 15000

let signer = null
let pointer = null
let secretKey = null
let pendingUri = null
let connecting = null
const auths = []

function bounded (promise, ms, what) {
  return Promise.race([promise, new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms))])
}

async function open (uri, skHex) {
  pointer = await parseBunkerInput(uri)
  if (!pointer) throw new Error('not a bunker URI')
  secretKey = skHex ? hexToBytes(skHex) : generateSecretKey()
  if (signer) await signer.close()
  signer = BunkerSigner.fromBunker(secretKey, pointer, { onauth: (url) => auths.push(url) })
  return { pubkey: getPublicKey(secretKey), secret_key: bytesToHex(secretKey), bunker: pointer.pubkey, relays: pointer.relays }
}

const ops = {
  async bunker ({ uri, secret_key: sk, metadata }) {
    const info = await open(uri, sk)
    await signer.connect(metadata)
    return info
  },
  async open ({ uri, secret_key: sk }) { return open(uri, sk) },
  async nostrconnect_uri ({ relays, perms, name }) {
    secretKey = generateSecretKey()
    const secret = bytesToHex(generateSecretKey()).slice(0, 16)
    pendingUri = createNostrConnectURI({ clientPubkey: getPublicKey(secretKey), relays, secret, perms, name, url: 'https://interop.example' })
    return { uri: pendingUri, pubkey: getPublicKey(secretKey), secret_key: bytesToHex(secretKey) }
  },
  async nostrconnect_listen ({ timeout }) {
    const relays = new URL(pendingUri).searchParams.getAll('relay')
    const pool = new SimplePool()
    await Promise.all(relays.map((url) => pool.ensureRelay(url)))
    connecting = BunkerSigner.fromURI(secretKey, pendingUri, { pool, onauth: (url) => auths.push(url) }, timeout ?? DEFAULT_TIMEOUT)
    connecting.catch(() => {})
    // A relay answers REQs on one connection in order: this marker's EOSE means fromURI's REQ is in place.
    await new Promise((resolve) => {
      const marker = pool.subscribe(relays, { ids: ['0'.repeat(64)] }, { oneose: () => { marker.close(); resolve() } })
    })
    return 'listening'
  },
  async nostrconnect_wait () {
    signer = await connecting
    pointer = signer.bp
    return { bunker: signer.bp.pubkey, relays: signer.bp.relays }
  },
  async connect () { await signer.connect(); return 'ack' },
  async get_public_key () { return signer.getPublicKey() },
  async ping () { await signer.ping(); return 'pong' },
  async switch_relays () { const switched = await signer.switchRelays(); return { switched, relays: signer.bp.relays } },
  async logout () { await signer.logout(); return 'ack' },
  async relays () { return signer.bp.relays },
  async auths () { return auths },
  async sign ({ template }) {
    const event = await signer.signEvent(template)
    if (!verifyEvent(event)) throw new Error('signed event does not verify')
    return event
  },
  async nip44_encrypt ({ peer, text }) { return signer.nip44Encrypt(peer, text) },
  async nip44_decrypt ({ peer, text }) { return signer.nip44Decrypt(peer, text) },
  async nip04_encrypt ({ peer, text }) { return signer.nip04Encrypt(peer, text) },
  async nip04_decrypt ({ peer, text }) { return signer.nip04Decrypt(peer, text) },
  async raw ({ method, params }) { return signer.sendRequest(method, params ?? []) },
  async plain ({ scheme, mode, secret_key: sk, peer, text }) {
    const key = hexToBytes(sk)
    if (scheme === 'nip44') {
      const conv = nip44.getConversationKey(key, peer)
      return mode === 'encrypt' ? nip44.encrypt(text, conv) : nip44.decrypt(text, conv)
    }
    return mode === 'encrypt' ? nip04.encrypt(key, peer, text) : nip04.decrypt(key, peer, text)
  },
  async verify ({ event }) { return verifyEvent(event) }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', (line) => {
  let cmd
  try { cmd = JSON.parse(line) } catch { return }
  const started = Date.now()
  const op = ops[cmd.op]
  if (!op) { write({ id: cmd.id, ok: false, err: `unknown op ${cmd.op}`, ms: 0 }); return }
  bounded(op(cmd), cmd.timeout ?? DEFAULT_TIMEOUT, cmd.op)
    .then((data) => write({ id: cmd.id, ok: true, data, ms: Date.now() - started }))
    .catch((err) => write({ id: cmd.id, ok: false, err: errText(err), ms: Date.now() - started }))
})
lines.on('close', async () => {
  try { if (signer) await signer.close() } catch {}
  process.exit(0)
})
write({ ready: true })
