// The JS reference as a batch oracle for Igloo's differential tests.
//
// stdin : {"cases": [{"op": "<name>", ...args}, ...]}
// stdout: {"results": [{"ok": true, "data": ...} | {"ok": false, "err": "..."}, ...]}  (same order)
//
// Every op calls the published packages (@frostr/bifrost 1.0.7, @cmdcode/nostr-p2p, nostr-tools) directly,
// so a result is what the reference itself produces. Many cases go in one process to keep the tests fast.
import { PackageEncoder } from '@frostr/bifrost'
import * as Lib from '@frostr/bifrost/lib'
import * as P2P from '@cmdcode/nostr-p2p/lib'
import { schnorr } from '@noble/curves/secp256k1'
import * as nip04 from 'nostr-tools/nip04'
import * as nip19 from 'nostr-tools/nip19'
import * as nip44 from 'nostr-tools/nip44'

const hex = (bytes) => Buffer.from(bytes).toString('hex')
const unhex = (text) => Uint8Array.from(Buffer.from(text, 'hex'))

const OPS = {
  // Credentials -----------------------------------------------------------------------------------------
  keygen: ({ threshold, total, secrets = [], aux_seeds = [] }) => {
    const { group, shares } = Lib.generate_dealer_pkg(threshold, total, secrets, aux_seeds)
    return {
      group,
      shares,
      bfgroup: PackageEncoder.group.encode(group),
      bfshares: shares.map((s) => PackageEncoder.share.encode(s)),
    }
  },
  decode: ({ bfgroup, bfshares = [] }) => ({
    group: PackageEncoder.group.decode(bfgroup),
    shares: bfshares.map((s) => PackageEncoder.share.decode(s)),
  }),
  encode: ({ group, shares = [] }) => ({
    bfgroup: PackageEncoder.group.encode(group),
    bfshares: shares.map((s) => PackageEncoder.share.encode(s)),
  }),
  recover: ({ group, shares }) => Lib.recover_secret_key(group, shares),
  group_id: ({ group }) => Lib.get_group_id(group),
  is_member: ({ group, share }) => Lib.is_group_member(group, share),

  // Signing sessions --------------------------------------------------------------------------------------
  session: ({ group, members, hashes, content = null, type = 'message', stamp }) => {
    const template = Lib.create_session_template(members, hashes, { content, type, stamp })
    if (template === null) throw new Error('template rejected by the reference schema')
    return Lib.create_session_pkg(group, template)
  },
  verify_session: ({ group, session }) => Lib.verify_session_pkg(group, session),
  sign: ({ group, share, session }) => Lib.create_psig_pkg(Lib.get_session_ctx(group, session), share),
  verify_psig: ({ group, session, pkg }) => Lib.verify_psig_pkg(Lib.get_session_ctx(group, session), pkg),
  combine: ({ group, session, pkgs }) => Lib.combine_signature_pkgs(Lib.get_session_ctx(group, session), pkgs),
  // Every member of the session signs, then combine; each entry is also BIP-340 verified by noble.
  sign_all: ({ group, shares, session }) => {
    const ctx = Lib.get_session_ctx(group, session)
    const pkgs = session.members.map((idx) => {
      const share = shares.find((s) => s.idx === idx)
      if (share === undefined) throw new Error('no share for member ' + idx)
      return Lib.create_psig_pkg(ctx, share)
    })
    const entries = Lib.combine_signature_pkgs(ctx, pkgs)
    const verified = entries.map(([sighash, pk, sig]) => schnorr.verify(sig, sighash, pk.slice(2)))
    return { pkgs, entries, verified }
  },
  schnorr_verify: ({ msg, pubkey, sig }) => schnorr.verify(sig, msg, pubkey),

  // Threshold ECDH ----------------------------------------------------------------------------------------
  ecdh_pkg: ({ members, ecdh_pk, share }) => Lib.create_ecdh_pkg(members, ecdh_pk, share),
  ecdh_combine: ({ pkgs }) => Lib.combine_ecdh_pkgs(pkgs),

  // nostr-p2p transport cipher (spec §5.2) ------------------------------------------------------------------
  shared_secret: ({ seckey, pubkey }) => P2P.get_shared_secret(seckey, pubkey),
  p2p_encrypt: ({ seckey, pubkey, plaintext, iv }) =>
    P2P.encrypt_content(P2P.get_shared_secret(seckey, pubkey), plaintext, iv),
  p2p_decrypt: ({ seckey, pubkey, content }) =>
    P2P.decrypt_content(P2P.get_shared_secret(seckey, pubkey), content),
  envelope: ({ tag, data, id }) => P2P.create_payload(tag, data, id),
  // A whole kind-20004 transport event as nostr-p2p builds it, and the receive side (verify, decrypt, parse).
  p2p_event: ({ seckey, pubkey, tag, data, id }) =>
    P2P.create_event({ kind: 20004, tags: [] }, P2P.create_payload(tag, data, id), pubkey, seckey),
  p2p_open: ({ seckey, event }) => {
    const [tag, id, data] = P2P.decrypt_payload(event, seckey)
    return { tag, id, data }
  },

  // nostr-tools ----------------------------------------------------------------------------------------------
  nip44_conv_key: ({ seckey, pubkey }) => hex(nip44.getConversationKey(unhex(seckey), pubkey)),
  nip44_encrypt: ({ conv_key, plaintext, nonce }) =>
    nip44.encrypt(plaintext, unhex(conv_key), nonce === undefined ? undefined : unhex(nonce)),
  nip44_decrypt: ({ conv_key, payload }) => nip44.decrypt(payload, unhex(conv_key)),
  nip04_encrypt: ({ seckey, pubkey, plaintext }) => nip04.encrypt(seckey, pubkey, plaintext),
  nip04_decrypt: ({ seckey, pubkey, payload }) => nip04.decrypt(seckey, pubkey, payload),
  nsec_encode: ({ seckey }) => nip19.nsecEncode(unhex(seckey)),
  npub_encode: ({ pubkey }) => nip19.npubEncode(pubkey),
  nip19_decode: ({ text }) => {
    const { type, data } = nip19.decode(text)
    return { type, data: typeof data === 'string' ? data : hex(data) }
  },
}

function run (c) {
  const fn = OPS[c.op]
  if (fn === undefined) return { ok: false, err: 'unknown op: ' + c.op }
  try {
    return { ok: true, data: fn(c) ?? null }
  } catch (err) {
    return { ok: false, err: err instanceof Error ? err.message : String(err) }
  }
}

let text = ''
process.stdin.setEncoding('utf8')
for await (const chunk of process.stdin) text += chunk
const { cases } = JSON.parse(text)
process.stdout.write(JSON.stringify({ results: cases.map(run) }))
