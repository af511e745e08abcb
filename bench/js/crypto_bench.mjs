// The JS reference side of bench/crypto_bench.py: times @frostr/bifrost 1.0.7 on the same operations.
//
// stdin : {"iterations": N, "repetitions": R, "warmup": W}
// stdout: {"ops": {name: {"wall_ms": [per-op ms per repetition], "cpu_ms": [...]}}, "versions": {...}}
//
// Packages resolve from tests/interop/js/node_modules (the pinned reference install).
import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
const modules = path.resolve(here, '../../tests/interop/js/node_modules')
const req = createRequire(path.join(modules, 'x.js'))
const load = async (name) => import(pathToFileURL(req.resolve(name)).href)

const Lib = await load('@frostr/bifrost/lib')
const { schnorr } = await load('@noble/curves/secp256k1')
const version = (name) => JSON.parse(readFileSync(path.join(modules, name, 'package.json'), 'utf8')).version

const rand = () => randomBytes(32).toString('hex')
const { group, shares } = Lib.generate_dealer_pkg(2, 3)
const members = [shares[0].idx, shares[1].idx]

function signSession (hashes) {
  const template = Lib.create_session_template([...members], hashes, { stamp: 1700000000 })
  const session = Lib.create_session_pkg(group, template)
  const ctx = Lib.get_session_ctx(group, session)
  const pkgs = [Lib.create_psig_pkg(ctx, shares[0]), Lib.create_psig_pkg(ctx, shares[1])]
  const entries = Lib.combine_signature_pkgs(ctx, pkgs)
  for (const [sighash, pk, sig] of entries) {
    if (!schnorr.verify(sig, sighash, pk.slice(2))) throw new Error('reference produced an invalid signature')
  }
  return entries
}

const OPS = {
  keygen_2of3: () => Lib.generate_dealer_pkg(2, 3),
  sign_session_2of3: () => signSession([[rand()]]),
  sign_batch_10: () => signSession(Array.from({ length: 10 }, () => [rand()])),
  ecdh_2of3: () => {
    const ecdhPk = schnorr.getPublicKey(randomBytes(32))
    const pk = Buffer.from(ecdhPk).toString('hex')
    const pkgs = [Lib.create_ecdh_pkg(members, pk, shares[0]), Lib.create_ecdh_pkg(members, pk, shares[1])]
    return Lib.combine_ecdh_pkgs(pkgs)
  },
}

function median (xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

let text = ''
process.stdin.setEncoding('utf8')
for await (const chunk of process.stdin) text += chunk
const { iterations = 20, repetitions = 5, warmup = 5, only = null } = JSON.parse(text || '{}')

const out = {}
for (const [name, fn] of Object.entries(OPS)) {
  if (only !== null && !only.includes(name)) continue
  for (let i = 0; i < warmup; i++) fn()
  const wall = []
  const cpu = []
  for (let r = 0; r < repetitions; r++) {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    for (let i = 0; i < iterations; i++) fn()
    const t1 = performance.now()
    const c1 = process.cpuUsage(c0)
    wall.push((t1 - t0) / iterations)
    cpu.push((c1.user + c1.system) / 1000 / iterations)
  }
  out[name] = { wall_ms: wall, cpu_ms: cpu, wall_median: median(wall), cpu_median: median(cpu) }
}
process.stdout.write(JSON.stringify({
  ops: out,
  versions: {
    node: process.version,
    bifrost: version('@frostr/bifrost'),
    frost: version('@cmdcode/frost'),
  },
}))
