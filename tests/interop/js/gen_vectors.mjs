// Regenerates tests/vectors/frostr-py-vectors.json from the published npm packages pinned in package.json.
//
//   cd tests/interop/js && npm install && node gen_vectors.mjs [OUT]     (OUT defaults to ../../vectors/…)
//
// Every input is a constant below, so every section except `live_transcript` (live timestamps, message ids and
// random IVs), `transport.signed_event_example` (random IV and BIP-340 aux) and `transport.nip04` (random IV) comes out byte for byte the same
// on every run; tests/interop/test_vector_generator.py reruns this script and compares. Field meanings are in
// tests/vectors/README.md. The live transcript runs three BifrostNodes on an in-process relay on 127.0.0.1.
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRelay } from './relay.mjs'

// Node 20 has no global WebSocket; nostr-tools captures it at import time, so shim before importing bifrost.
globalThis.WebSocket = (await import('ws')).WebSocket
const { BifrostNode, PackageEncoder } = await import('@frostr/bifrost')
const Lib = await import('@frostr/bifrost/lib')
const Encoder = await import('@frostr/bifrost/encoder')
const Frost = await import('@cmdcode/frost/lib')
const { H } = await import('@cmdcode/frost/ecc')
const { Buff } = await import('@cmdcode/buff')
const P2P = await import('@cmdcode/nostr-p2p/lib')
const { schnorr } = await import('@noble/curves/secp256k1')
const nip19 = await import('nostr-tools/nip19')
const nip04 = await import('nostr-tools-2.25/nip04')
const nip44 = await import('nostr-tools-2.25/nip44')

const HERE = dirname(fileURLToPath(import.meta.url))
const OUT = process.argv[2] ?? join(HERE, '..', '..', 'vectors', 'frostr-py-vectors.json')
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n

// ---------------------------------------------------------------------------------------------- fixed inputs
const KEYSETS = {
  even: {
    secrets: ['ca1480ba4436cc1c53d32cc4c15f719b3abc74a1ac2b04c348b88c03db5e2e9b',
      '15c83fb270cdf8557c9e82dfeec369407a190d40bbaafbe792524547ad5a43e7'],
    aux_seeds: [
      'ce24e8f56bdf7dcfbdb266a80fbd300ccc45fc4a3c3c764bd2d304f5253b923c459ec404bf558c2c9b9e98f6c31273cfd231d54074969f54b9c93933d270fee7',
      '2748585a91bc04baaa7ff5f1d4bbbd45d8a9647b7f94f90705647ad914015a2dbf4a22546e97d702c2160e461d351351a83b83a18bc3ca2d8a6ee9b8aee2ade3',
      'c5fe02520468cf1fa9a43df2208534949bb84e943f53d9802e5181bdedb3d7a8f078b2c006aa307593160dc01057e060f6347a534a65513af10263754e90e85c'],
  },
  odd: {
    secrets: ['fe55273de7ea8c2455c70746bc50796821be353ecd8a7a2862ee911bfbcbc59b',
      '13ab0e4b16ea2d10a05f83bfc6ba059cb939c938ac7a9798c14e8e5335432ca4'],
    aux_seeds: [
      'c9e314ba8c84c12292171938dbe93d437c178ba17ddd7ccadf38ebb554ffcc2bb998627a3a3561142d0532ad83b23f75912341c0da9672ad1e0a8b95a180bc99',
      '855ea884102ba7bf13d3d7fdf86cb2566576a36f9bb43e30060083c4d50391934fd2cd742beda555d431186c140685997042765edad961597f93dd527f5c649a',
      '17a80b63b3cb854ea70fbea2b8461398b60ad48c6be67de1bfc1228183ecbf15669e3ac0ad66eb5b385cc7a551e8ce347332159119494c39044a1be0b6556b0d'],
  },
}
// The odd session gives its members unsorted ([3, 2]) and has a tweak that drives the key state to n-1.
const SESSIONS = [
  {
    keyset: 'even',
    members: [1, 2],
    hashes: [['3a0de37932e8b19746f20b22414f862fd4c5a13960261ff982409854500159f6'],
      ['95a0deee3cd5e09eb02e66df7e744cc31c262e97644e9a913b5a83e5203efa6b',
        '018cffca3bbfd309c3542e84223c853374f0546496945280af666af7281e0477']],
    options: { stamp: 1700000000, content: null, type: 'message' },
  },
  {
    keyset: 'odd',
    members: [3, 2],
    hashes: [['78787959928ca0a84a686c7e769dfc0525dcd32ee7b00c960c1766a9bd49867a'],
      ['e772ad2dc6bab4ecb123edce29fda83019a3eac9dd21da531b41ed6cebf75273',
        '8940d93bd63208fb538551d0c5de9b0559e4a01f39d0f9be5b1388bf5f7d48ce',
        'f8d8d9be971ff59a3b01323caf84e492cb40a30162b1edfe520291d22dea630a']],
    options: { stamp: 1700000123, content: 'cafebabe', type: 'message' },
  },
]
const ECDH_PEER_SECKEY = '937a27eb838d7f7f0d4ee5f67e9423fb7b81e632cc3c5e94ff2e472dec708dbd'
const ECDH_MEMBERS = { even: [1, 3], odd: [2, 3] }
const P2P_MESSAGE_ID = 'f53124bff8546fa66983bf75a94fb7ef'
const P2P_IV = 'cb963120c7debc31763f11b271388b0f52da59ace0080daa'
const NIP44_NONCE = '03eebab2628ea7e8644354c36291ec2adb023b52dc5bd47bf71c3d7d0271babe'
const LIVE_SIGN = { message: '35a987b95f7337c479afa9ed08f36b3d567e0ec042e11794ae9c966175f0ca4d', stamp: 1700000000 }
const LIVE_BATCH = {
  message: [['8f5815465303ca0a3b700c07068ef3ef0bf6f4d8a6cd60bf7220cd3d33e7c77e'],
    ['280d89f4b7d66d4d75f007ede05ec1de4724b6f7a6f2d50d9639fac116b0e46a',
      'ffbb5451c85248587233ae49ce41fc89a13f81396e47d6c889f9111e418f460e']],
  stamp: 1700000001,
}

// --------------------------------------------------------------------------------------------------- helpers
const hex32 = (big) => big.toString(16).padStart(64, '0')
const keyState = (value) => (value === 1n ? '1' : value === N - 1n ? 'n-1' : hex32(value))
const version = (name) => JSON.parse(readFileSync(join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version
const parseData = (data) => { try { return JSON.parse(data) } catch { return data } }
const pairs = (list) => list.flatMap((a, i) => list.slice(i + 1).map((b) => [a, b]))

function keyset (label) {
  const { secrets, aux_seeds: auxSeeds } = KEYSETS[label]
  const { group, shares } = Lib.generate_dealer_pkg(2, 3, secrets, auxSeeds)
  const nonceDerivation = shares.map((share, i) => {
    // bifrost passes 32 hex characters (16 bytes) per nonce; frost pads each to 32 bytes (spec §2.2).
    const hiddenAux = Buff.bytes(auxSeeds[i].slice(0, 32), 32).hex
    const binderAux = Buff.bytes(auxSeeds[i].slice(32, 64), 32).hex
    return {
      idx: share.idx,
      aux_seed: auxSeeds[i],
      hidden_aux32: hiddenAux,
      binder_aux32: binderAux,
      hidden_h3_input: hiddenAux + share.seckey,
      binder_h3_input: binderAux + share.seckey,
      hidden_sn: H.H3(Buff.hex(hiddenAux + share.seckey)).hex,
      binder_sn: H.H3(Buff.hex(binderAux + share.seckey)).hex,
    }
  })
  return {
    label,
    inputs: { threshold: 2, total: 3, secrets, aux_seeds: auxSeeds },
    secret_key: secrets[0],
    nsec: nip19.nsecEncode(Buff.hex(secrets[0])),
    group_pubkey_xonly: group.group_pk.slice(2),
    npub: nip19.npubEncode(group.group_pk.slice(2)),
    group_pk_parity: group.group_pk.startsWith('02') ? 'even' : 'odd',
    group,
    shares,
    group_serialized_hex: Buff.bytes(Encoder.serialize_group_data(group)).hex,
    shares_serialized_hex: shares.map((s) => Buff.bytes(Encoder.serialize_share_data(s)).hex),
    bfgroup: PackageEncoder.group.encode(group),
    bfshares: shares.map((s) => PackageEncoder.share.encode(s)),
    group_id: Lib.get_group_id(group),
    group_id_preimage_hex: Buff.join([Frost.get_commits_prefix([...group.commits]), group.group_pk]).hex,
    member_nostr_pubkeys: group.commits.map((c) => ({ idx: c.idx, pubkey: c.pubkey.slice(2) })),
    nonce_derivation: nonceDerivation,
    recovery: pairs(shares).map(([a, b]) => {
      const secret = Lib.recover_secret_key(group, [a, b])
      return { share_indexes: [a.idx, b.idx], recovered_secret: secret, nsec: nip19.nsecEncode(Buff.hex(secret)) }
    }),
  }
}

function sessionVector (spec, ks) {
  const { group, shares } = ks
  const options = { ...spec.options }
  const template = Lib.create_session_template([...spec.members], spec.hashes, options)
  const session = Lib.create_session_pkg(group, template)
  const ctx = Lib.get_session_ctx(group, session)
  const psigPkgs = session.members.map((idx) => Lib.create_psig_pkg(ctx, shares.find((s) => s.idx === idx)))
  const entries = Lib.combine_signature_pkgs(ctx, psigPkgs)
  const commits = Object.fromEntries(session.members.map((idx) => [idx, Lib.create_member_commits(group, session, idx)]))
  const secrets = Object.fromEntries(session.members.map((idx) =>
    [idx, Lib.create_member_shares(session, shares.find((s) => s.idx === idx))]))
  const sidPreimage = Buff.join([session.gid, ...session.members.map((m) => Buff.bytes(m)),
    ...session.hashes.map((v) => Buff.join(v)), Buff.bytes(session.content ?? '00'), Buff.str(session.type),
    Buff.num(session.stamp, 4)]).hex
  const perSighash = session.hashes.map((vec, v) => {
    const [sighash, ...tweaks] = vec
    const sctx = ctx.sigmap.get(sighash)
    const entry = entries.find((e) => e[0] === sighash)
    const commitList = Frost.get_commits_prefix([...sctx.pnonces])
    return {
      sighash,
      tweaks,
      internal_group_pk: group.group_pk,
      tweaked_group_pk: sctx.group_pk,
      key_state: {
        parity: keyState(sctx.group_pt.parity),
        state: keyState(sctx.group_pt.state),
        tweak_acc: hex32(sctx.group_pt.tweak),
      },
      members: session.members.map((idx) => {
        const commit = commits[idx][v]
        const secret = secrets[idx][v]
        return {
          idx,
          bind_hash_preimage_hex: Buff.join([session.sid, Buff.num(idx, 4), Buff.join(vec)]).hex,
          bind_hash: commit.bind_hash,
          session_hidden_sn: secret.hidden_sn,
          session_binder_sn: secret.binder_sn,
          session_hidden_pn: commit.hidden_pn,
          session_binder_pn: commit.binder_pn,
          binding_factor: sctx.bind_factors.find((b) => b.idx === idx).factor,
          lagrange_coeff: hex32(Frost.interpolate_x(sctx.indexes, BigInt(idx))),
          psig: psigPkgs.find((p) => p.idx === idx).psigs.find((p) => p[0] === sighash)[1],
        }
      }),
      commit_list_hex: Buff.bytes(commitList).hex,
      h4_msg_hash: H.H4(Buff.hex(sighash)).hex,
      h5_commit_hash: H.H5(commitList).hex,
      bind_prefix: sctx.bind_prefix,
      group_nonce_R: sctx.group_pn,
      challenge: hex32(sctx.challenge),
      signature: entry[2],
      signature_entry: entry,
      bip340_verify: schnorr.verify(entry[2], sighash, entry[1].slice(2)),
    }
  })
  return {
    keyset: spec.keyset,
    inputs: { members: spec.members, hashes: spec.hashes, options: spec.options },
    session_pkg: session,
    session_pkg_json: JSON.stringify(session),
    sid_preimage_hex: sidPreimage,
    per_sighash: perSighash,
    psig_pkgs: psigPkgs,
    psig_pkgs_json: psigPkgs.map((p) => JSON.stringify(p)),
    signature_entries: entries,
  }
}

function ecdhVector (label, ks) {
  const members = ECDH_MEMBERS[label]
  const ecdhPk = Buff.bytes(schnorr.getPublicKey(ECDH_PEER_SECKEY)).hex
  const packages = members.map((idx) => Lib.create_ecdh_pkg(members, ecdhPk, ks.shares.find((s) => s.idx === idx)))
  const point = Lib.combine_ecdh_pkgs(packages)
  return {
    keyset: label,
    ecdh_peer_seckey: ECDH_PEER_SECKEY,
    ecdh_pk: ecdhPk,
    members,
    lagrange: members.map((idx) => ({ idx, lambda: hex32(Frost.interpolate_x(members.map(BigInt), BigInt(idx))) })),
    packages,
    packages_json: packages.map((p) => JSON.stringify(p)),
    result_point: point,
    result_shared_x: point.slice(2),
  }
}

function transport (even) {
  const sender = even.shares[0].seckey
  const recipient = even.shares[1].seckey
  const senderPk = P2P.get_pubkey(sender)
  const recipientPk = P2P.get_pubkey(recipient)
  const shared = P2P.get_shared_secret(sender, recipientPk)
  const payload = P2P.create_payload('/ping/req', 'ping', P2P_MESSAGE_ID)
  const payload2 = P2P.create_payload('/echo/req', JSON.stringify({ hello: 'world' }), P2P_MESSAGE_ID)
  const event = P2P.create_event({ kind: 20004, tags: [], created_at: 1700000000 }, payload, recipientPk, sender)
  const convKey = nip44.v2.utils.getConversationKey(Buff.hex(sender), recipientPk)
  return {
    nostr_p2p_aes_gcm: {
      sender_seckey: sender,
      sender_pubkey: senderPk,
      recipient_seckey: recipient,
      recipient_pubkey: recipientPk,
      shared_x: shared,
      message_id: P2P_MESSAGE_ID,
      plaintext_payload: payload,
      iv_hex: P2P_IV,
      content: P2P.encrypt_content(shared, payload, P2P_IV),
      plaintext_payload_2: payload2,
      content_2: P2P.encrypt_content(shared, payload2, P2P_IV),
    },
    signed_event_example: {
      event,
      recipient_seckey: recipient,
      decrypted_payload: P2P.decrypt_payload(event, recipient),
    },
    nip44_v2: {
      sender_seckey: sender,
      recipient_pubkey: recipientPk,
      shared_x: shared,
      conversation_key: Buff.bytes(convKey).hex,
      nonce: NIP44_NONCE,
      plaintext: 'hello frostr',
      payload: nip44.v2.encrypt('hello frostr', convKey, Buff.hex(NIP44_NONCE)),
    },
    nip04: {
      sender_seckey: sender,
      recipient_seckey: recipient,
      recipient_pubkey: recipientPk,
      plaintext: 'hello nip04 ✓',
      payload: nip04.encrypt(sender, recipientPk, 'hello nip04 ✓'),
    },
  }
}

// Three reference nodes (alice = share 1, bob = 2, carol = 3) on an in-process relay; alice asks bob.
async function liveTranscript (even) {
  const frames = []
  const wss = await startRelay(0, (msg) => frames.push(msg))
  const url = `ws://127.0.0.1:${wss.address().port}`
  const names = ['alice', 'bob', 'carol']
  const nodeEvents = []
  const nodes = names.map((name, i) => {
    const node = new BifrostNode(even.group, even.shares[i], [url], { policies: [] })
    node.on('*', (event) => nodeEvents.push([name, event]))
    return node
  })
  try {
    await Promise.all(nodes.map((node) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('a node did not become ready')), 15000)
      node.once('ready', () => { clearTimeout(timer); resolve() })
      node.connect().catch(reject)
    })))
    const [alice, bob] = nodes
    const result = (res) => (res.ok ? { ok: true, data: res.data } : { ok: false, err: res.err })
    const ecdhPk = Buff.bytes(schnorr.getPublicKey(ECDH_PEER_SECKEY)).hex
    const results = {
      ping: result(await alice.req.ping(bob.pubkey)),
      echo: result(await alice.req.echo('0123456789abcdef')),
      ecdh: result(await alice.req.ecdh(ecdhPk, [bob.pubkey])),
      sign: result(await alice.req.sign(LIVE_SIGN.message, { stamp: LIVE_SIGN.stamp, peers: [bob.pubkey] })),
      sign_batch: result(await alice.req.sign(LIVE_BATCH.message, { stamp: LIVE_BATCH.stamp, peers: [bob.pubkey] })),
    }
    const byPubkey = Object.fromEntries(nodes.map((n, i) => [n.pubkey, i]))
    const messages = frames.filter((f) => f[0] === 'EVENT').map(([, event]) => {
      const to = byPubkey[event.tags.find((t) => t[0] === 'p')[1]]
      const envelope = P2P.decrypt_payload(event, even.shares[to].seckey)
      return { from_idx: byPubkey[event.pubkey] + 1, to_idx: to + 1, event, envelope, data_parsed: parseData(envelope[2]) }
    })
    return {
      relay: 'loopback relay written for this script (ws://127.0.0.1:<random>)',
      node_pubkeys: nodes.map((n, i) => ({ name: names[i], idx: i + 1, pubkey: n.pubkey })),
      req_frames: frames.filter((f) => f[0] === 'REQ'),
      results,
      messages,
      node_events: nodeEvents,
    }
  } finally {
    await Promise.all(nodes.map((node) => node.close().catch(() => {})))
    for (const client of wss.clients) client.terminate()
    wss.close()
  }
}

const keysets = Object.keys(KEYSETS).map(keyset)
const byLabel = Object.fromEntries(keysets.map((k) => [k.label, k]))
const vectors = {
  description: 'FROSTR bifrost v1 vectors generated by running the published npm packages with ' +
    'tests/interop/js/gen_vectors.mjs. See tests/vectors/README.md.',
  generated_with: Object.fromEntries(['@frostr/bifrost', '@cmdcode/frost', '@cmdcode/nostr-p2p', '@cmdcode/buff']
    .map((name) => [name, version(name)]).concat([['nostr-tools', version('nostr-tools-2.25')],
      ['@noble/curves', version('@noble/curves')], ['@noble/ciphers', version('@noble/ciphers')]])),
  keysets: keysets.map(({ label, ...rest }) => ({ label, ...rest })),
  sessions: SESSIONS.map((spec) => sessionVector(spec, byLabel[spec.keyset])),
  ecdh: keysets.map((ks) => ecdhVector(ks.label, ks)),
  transport: transport(byLabel.even),
  live_transcript: await liveTranscript(byLabel.even),
}
writeFileSync(OUT, JSON.stringify(vectors, null, 2) + '\n')
process.stdout.write(JSON.stringify({ written: OUT }) + '\n')
process.exit(0)
