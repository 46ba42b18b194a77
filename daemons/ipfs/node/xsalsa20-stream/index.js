// xsalsa20's API, `xsalsa20(nonce, key).update(input[, output])` and `.final()`, as
// @libp2p/pnet uses it for a private network's connection cipher: one XSalsa20 key stream per
// direction, XORed over the bytes in the order they pass. The cipher itself is @noble/ciphers'
// (audited); this module only tracks the stream position across updates of any length: whole
// 64-byte blocks go to noble with the block counter, and a block cut by an update's end is kept
// so the next update carries on inside it.
//
// It replaces xsalsa20 1.2.0 (see package.json "overrides"): that module keeps one WASM memory
// for all its ciphers, but each caches its own view of it; when one cipher grows the memory the
// others' views go stale (length 0), so their next update grows it again by the whole input.
// Two ciphers taking turns grow it without bound until WebAssembly.Memory.grow() throws.

import { xsalsa20 as xsalsa20Xor } from '@noble/ciphers/salsa.js'

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

class XSalsa20Stream {
  constructor (nonce, key) {
    if (nonce == null || nonce.length < NONCE_BYTES) throw new Error('nonce must be at least 24 bytes')
    if (key == null || key.length < KEY_BYTES) throw new Error('key must be at least 32 bytes')
    // copies: the caller may reuse its buffers; xsalsa20 1.2.0 also used only the first bytes
    this._nonce = Uint8Array.from(nonce.subarray(0, NONCE_BYTES))
    this._key = Uint8Array.from(key.subarray(0, KEY_BYTES))
    this._counter = 0 // the next block noble has not produced yet
    this._block = new Uint8Array(BLOCK_BYTES) // key stream of the block an update ended inside
    this._used = BLOCK_BYTES // how much of _block is spent (BLOCK_BYTES: none left)
  }

  update (input, output) {
    if (input == null) throw new Error('input must be Uint8Array or Buffer')
    if (this._key == null) throw new Error('xsalsa20: update after final()')
    const length = input.length
    if (output == null) output = new Uint8Array(length)
    else if (output.length < length) throw new Error('output must be at least as long as input')
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

XSalsa20Stream.prototype.finalize = XSalsa20Stream.prototype.final

export default function xsalsa20 (nonce, key) {
  return new XSalsa20Stream(nonce, key)
}

xsalsa20.NONCEBYTES = NONCE_BYTES
xsalsa20.KEYBYTES = KEY_BYTES
