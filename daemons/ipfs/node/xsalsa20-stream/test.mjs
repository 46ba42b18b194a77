// node --test daemons/ipfs/node/xsalsa20-stream/: both back-ends of this module (libsodium and
// @noble/ciphers) against xsalsa20 1.2.0's output (known-answers.json, made by
// make-known-answers.cjs with the original package) and against each other, for streams cut
// into odd update sizes, and their memory under the pattern that broke the original.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import xsalsa20, { backend, streams } from './index.js'

const known = JSON.parse(readFileSync(new URL('./known-answers.json', import.meta.url)))
const hex = (s) => Uint8Array.from(Buffer.from(s, 'hex'))
const countingInput = (n, c) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + c * 17 + 5) & 255)

function xorInUpdates (cipher, input, sizes) {
  const out = new Uint8Array(input.length)
  let at = 0
  for (const n of sizes) {
    out.set(cipher.update(input.subarray(at, at + n)), at)
    at += n
  }
  return out
}

for (const [name, Stream] of Object.entries(streams)) {
  const xsalsa20 = (nonce, key) => new Stream(nonce, key)

  test(`${name}: matches xsalsa20 1.2.0 for every known answer, cut as it was cut`, () => {
    assert.ok(known.cases.length >= 9)
    for (const c of known.cases) {
      const total = c.sizes.reduce((a, b) => a + b, 0)
      const out = xorInUpdates(xsalsa20(hex(c.nonce), hex(c.key)), countingInput(total, c.inputSeed), c.sizes)
      assert.equal(Buffer.from(out).toString('hex'), c.output, `sizes ${c.sizes}`)
    }
  })

  test(`${name}: any cut of the stream gives the same bytes as one update`, () => {
    const c = known.cases.find((k) => k.sizes.includes(4096))
    const total = c.sizes.reduce((a, b) => a + b, 0)
    const input = countingInput(total, c.inputSeed)
    let seed = 1
    const next = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed }
    for (let trial = 0; trial < 50; trial++) {
      const sizes = []
      for (let left = total; left > 0;) {
        const n = Math.min(left, next() % 300) // 0-byte updates too
        sizes.push(n)
        left -= n
      }
      const out = xorInUpdates(xsalsa20(hex(c.nonce), hex(c.key)), input, sizes)
      assert.equal(Buffer.from(out).toString('hex'), c.output, `sizes ${sizes}`)
    }
  })

  test(`${name}: an output buffer is filled, in place too, and decrypting restores the input`, () => {
    const key = new Uint8Array(32).fill(9)
    const nonce = new Uint8Array(24).fill(3)
    const input = countingInput(1000, 4)
    const into = new Uint8Array(1000)
    assert.equal(xsalsa20(nonce, key).update(input, into), into)
    const inPlace = Uint8Array.from(input)
    xsalsa20(nonce, key).update(inPlace, inPlace)
    assert.deepEqual(inPlace, into)
    assert.deepEqual(xsalsa20(nonce, key).update(into), input)
  })

  test(`${name}: bad arguments are refused with the original messages`, () => {
    assert.throws(() => xsalsa20(new Uint8Array(23), new Uint8Array(32)), /nonce must be at least 24 bytes/)
    assert.throws(() => xsalsa20(new Uint8Array(24), new Uint8Array(31)), /key must be at least 32 bytes/)
    const x = xsalsa20(new Uint8Array(24), new Uint8Array(32))
    assert.throws(() => x.update(), /input must be Uint8Array or Buffer/)
    x.final()
    assert.throws(() => x.update(new Uint8Array(1)), /after final/)
  })

  test(`${name}: ciphers taking turns on 1.6 MB updates keep memory flat (xsalsa20 1.2.0 threw at the 38th)`, () => {
    const key = new Uint8Array(32).fill(7)
    const ciphers = [1, 2, 3, 4].map((n) => xsalsa20(new Uint8Array(24).fill(n), key))
    const chunk = new Uint8Array(1600 * 1024)
    const out = new Uint8Array(chunk.length)
    for (let i = 0; i < 40; i++) ciphers[i % 4].update(chunk, out)
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') // measure what stays, not garbage not yet collected
    gc()
    const before = process.memoryUsage()
    for (let i = 0; i < 120; i++) ciphers[i % 4].update(chunk.subarray(i % 64), out) // 190 MB
    gc()
    const after = process.memoryUsage()
    // a leak like the original's keeps ~1.6 MB per update (190 MB here); a few garbage copies may stay
    for (const kind of ['rss', 'arrayBuffers']) {
      const grew = (after[kind] - before[kind]) / 2 ** 20
      assert.ok(grew < 48, `${kind} grew ${grew.toFixed(1)} MiB over 190 MB of updates`)
    }
  })
}

test('libsodium is the cipher wherever sodium-native ships a binary (here: linux x64/arm64)', () => {
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch)) return
  assert.equal(backend, 'libsodium')
  assert.ok(xsalsa20(new Uint8Array(24), new Uint8Array(32)) instanceof streams.libsodium)
})

test('both back-ends give the same stream over 3 MB cut at random, big updates too', () => {
  assert.ok(streams.libsodium != null, 'sodium-native did not load')
  const nonce = Uint8Array.from({ length: 24 }, (_, i) => i * 7 + 1)
  const key = Uint8Array.from({ length: 32 }, (_, i) => 255 - i * 3)
  const input = countingInput(3 << 20, 9)
  let seed = 7
  const next = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed }
  const sizes = []
  for (let left = input.length; left > 0;) {
    const n = Math.min(left, next() % 4 === 0 ? next() % 300_000 : next() % 200)
    sizes.push(n)
    left -= n
  }
  const a = xorInUpdates(new streams.noble(nonce, key), input, sizes)
  const b = xorInUpdates(new streams.libsodium(nonce, key), input, sizes)
  assert.ok(Buffer.from(a).equals(Buffer.from(b)))
})
