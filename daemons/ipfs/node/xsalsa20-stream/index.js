// xsalsa20's API, `xsalsa20(nonce, key).update(input[, output])` and `.final()`, as
// @libp2p/pnet uses it for a private network's connection cipher: one XSalsa20 key stream per
// direction, XORed over the bytes in the order they pass.
//
// Two back-ends, the same bytes (test.mjs checks both against xsalsa20 1.2.0's output):
// - libsodium's XSalsa20 stream (sodium-native's crypto_stream_xor_init/update/final, the
//   construction Kubo's pnet uses), ~8x faster here (2.7 vs 0.35 GB/s,
//   benchmarks/ipfs_throughput.py --pnet): on a busy node the JS cipher was a sixth of its CPU;
// - @noble/ciphers' XSalsa20 (audited, pure JS) where sodium-native's addon cannot load (no
//   prebuilt binary for the platform): this module then tracks the stream position itself:
//   whole 64-byte blocks go to noble with the block counter, and a block cut by an update's
//   end is kept so the next update carries on inside it.
//
// It replaces xsalsa20 1.2.0 (see package.json "overrides"): that module keeps one WASM memory
// for all its ciphers, but each caches its own view of it; when one cipher grows the memory the
// others' views go stale (length 0), so their next update grows it again by the whole input.
// Two ciphers taking turns grow it without bound until WebAssembly.Memory.grow() throws.

import { createRequire } from 'node:module'
import { xsalsa20 as xsalsa20Xor } from '@noble/ciphers/salsa.js'

// FEDCHAIN_XSALSA20=noble picks the JS cipher (for comparisons, or if the addon misbehaves)
const FORCE_NOBLE = process.env.FEDCHAIN_XSALSA20 === 'noble'

/** sodium-native, or null with the reason it could not load (then the JS cipher is used). */
function loadSodium () {
  if (FORCE_NOBLE) return { sodium: null, error: new Error('FEDCHAIN_XSALSA20=noble') }
  try {
    const sodium = createRequire(import.meta.url)('sodium-native')
    if (sodium.crypto_stream_PRIMITIVE !== 'xsalsa20') throw new Error(`crypto_stream is ${sodium.crypto_stream_PRIMITIVE}`)
    return { sodium, error: null }
  } catch (err) {
    return { sodium: null, error: err }
  }
}

const { sodium, error: sodiumError } = loadSodium()

const BLOCK_BYTES = 64
const NONCE_BYTES = 24
const KEY_BYTES = 32
// noble's counter is 32 bits: 2^32 blocks of 64 bytes (256 GiB) per key stream
const MAX_BLOCKS = 2 ** 32 - 1
const ZERO_BLOCK = new Uint8Array(BLOCK_BYTES)

const isAligned32 = (bytes) => bytes.byteOffset % 4 === 0

/** noble's word-at-a-time path needs 4-byte aligned views (socket buffers often are not). */
function xorBlocks (key, nonce, input, output, counter) {
  if (isAligned32(input) && isAligned32(output)) {
    xsalsa20Xor(key, nonce, input, output, counter)
  } else {
    const copy = input.slice()
    xsalsa20Xor(key, nonce, copy, copy, counter)
    output.set(copy)
  }
}

class NobleXSalsa20Stream {
  constructor (nonce, key) {
    checkArguments(nonce, key)
    // copies: the caller may reuse its buffers; xsalsa20 1.2.0 also used only the first bytes
    this._nonce = Uint8Array.from(nonce.subarray(0, NONCE_BYTES))
    this._key = Uint8Array.from(key.subarray(0, KEY_BYTES))
    this._counter = 0 // the next block noble has not produced yet
    this._block = new Uint8Array(BLOCK_BYTES) // key stream of the block an update ended inside
    this._used = BLOCK_BYTES // how much of _block is spent (BLOCK_BYTES: none left)
  }

  update (input, output) {
    output = checkUpdate(input, output, this._key == null)
    const length = input.length
    let done = 0
    while (done < length && this._used < BLOCK_BYTES) {
      output[done] = input[done] ^ this._block[this._used++]
      done++
    }
    const whole = (length - done) - ((length - done) % BLOCK_BYTES)
    if (whole > 0) {
      const blocks = whole / BLOCK_BYTES
      this._checkRoom(blocks)
      xorBlocks(this._key, this._nonce, input.subarray(done, done + whole), output.subarray(done, done + whole), this._counter)
      this._counter += blocks
      done += whole
    }
    if (done < length) {
      this._checkRoom(1)
      xsalsa20Xor(this._key, this._nonce, ZERO_BLOCK, this._block, this._counter)
      this._counter += 1
      this._used = 0
      while (done < length) {
        output[done] = input[done] ^ this._block[this._used++]
        done++
      }
    }
    return output
  }

  final () {
    if (this._key != null) {
      this._key.fill(0)
      this._nonce.fill(0)
      this._block.fill(0)
    }
    this._key = null
  }

  _checkRoom (blocks) {
    if (this._counter + blocks > MAX_BLOCKS) {
      throw new Error('xsalsa20: this key stream is spent (256 GiB); open a new connection')
    }
  }
}

function checkArguments (nonce, key) {
  if (nonce == null || nonce.length < NONCE_BYTES) throw new Error('nonce must be at least 24 bytes')
  if (key == null || key.length < KEY_BYTES) throw new Error('key must be at least 32 bytes')
}

function checkUpdate (input, output, finished) {
  if (input == null) throw new Error('input must be Uint8Array or Buffer')
  if (finished) throw new Error('xsalsa20: update after final()')
  if (output == null) return new Uint8Array(input.length)
  if (output.length < input.length) throw new Error('output must be at least as long as input')
  return output
}

/** libsodium's stream state keeps the position (block counter and a cut block) itself. */
class SodiumXSalsa20Stream {
  constructor (nonce, key) {
    checkArguments(nonce, key)
    this._state = new Uint8Array(sodium.crypto_stream_xor_STATEBYTES)
    // the first bytes only, as xsalsa20 1.2.0; libsodium copies them into its state
    sodium.crypto_stream_xor_init(this._state, nonce.subarray(0, NONCE_BYTES), key.subarray(0, KEY_BYTES))
    this._finished = false
  }

  update (input, output) {
    output = checkUpdate(input, output, this._finished)
    // the addon asserts equal lengths (an abort, not an exception): pass exactly input's length
    sodium.crypto_stream_xor_update(this._state, output.subarray(0, input.length), input)
    return output
  }

  final () {
    if (!this._finished) sodium.crypto_stream_xor_final(this._state) // zeroes key and nonce
    this._finished = true
  }
}

for (const Stream of [NobleXSalsa20Stream, SodiumXSalsa20Stream]) Stream.prototype.finalize = Stream.prototype.final

/** Which cipher `xsalsa20()` gives: 'libsodium' or 'noble' (and why, for the node's log). */
export const backend = sodium != null ? 'libsodium' : 'noble'
export const backendNote = sodium != null
  ? 'libsodium (sodium-native)'
  : `@noble/ciphers (pure JS, ~8x slower; not libsodium: ${sodiumError?.message})`

/** Both back-ends, for tests that compare them. */
export const streams = { noble: NobleXSalsa20Stream, ...(sodium != null ? { libsodium: SodiumXSalsa20Stream } : {}) }

export default function xsalsa20 (nonce, key) {
  return sodium != null ? new SodiumXSalsa20Stream(nonce, key) : new NobleXSalsa20Stream(nonce, key)
}

xsalsa20.NONCEBYTES = NONCE_BYTES
xsalsa20.KEYBYTES = KEY_BYTES
