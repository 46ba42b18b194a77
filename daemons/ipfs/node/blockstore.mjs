// The bundled node's blockstore: blockstore-fs on disk (same layout, so existing repos
// open unchanged) behind an in-memory index of the blocks present and a byte-bounded LRU
// of recent block bytes. Bitswap asks `has` for every want a peer sends, mostly for blocks
// this node does not have (each a failed fs.access + an exception in blockstore-fs), and a
// block just added or fetched is usually read again at once (served to a peer, pinned,
// cat). One node process owns a repo (repo.lock), so the index stays exact.

import { FsBlockstore } from 'blockstore-fs'
import { NotFoundError } from 'interface-store'

const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024

function keyOf (cid) {
  return Buffer.from(cid.multihash.bytes).toString('base64')
}

async function toBytes (value) {
  if (value instanceof Uint8Array) return value
  const chunks = []
  for await (const chunk of value) chunks.push(chunk)
  return Buffer.concat(chunks)
}

/** Most-recently-used block bytes, evicting the oldest beyond `maxBytes`. */
class ByteLru {
  constructor (maxBytes) {
    this.maxBytes = maxBytes
    this.bytes = 0
    this.entries = new Map()
  }

  get (key) {
    const value = this.entries.get(key)
    if (value === undefined) return undefined
    this.entries.delete(key) // re-insert: Map order is the recency order
    this.entries.set(key, value)
    return value
  }

  set (key, value) {
    if (value.byteLength > this.maxBytes) return
    this.delete(key)
    this.entries.set(key, value)
    this.bytes += value.byteLength
    for (const [oldest, old] of this.entries) {
      if (this.bytes <= this.maxBytes) break
      this.entries.delete(oldest)
      this.bytes -= old.byteLength
    }
  }

  delete (key) {
    const value = this.entries.get(key)
    if (value === undefined) return
    this.entries.delete(key)
    this.bytes -= value.byteLength
  }
}

export class IndexedFsBlockstore {
  constructor (path, { cacheBytes = DEFAULT_CACHE_BYTES } = {}) {
    this.disk = new FsBlockstore(path)
    this.present = new Set()
    this.cache = new ByteLru(cacheBytes)
  }

  async open () {
    await this.disk.open()
    for await (const { cid } of this.disk.getAll()) this.present.add(keyOf(cid))
  }

  async close () {
    await this.disk.close()
  }

  async has (cid) {
    return this.present.has(keyOf(cid))
  }

  async put (cid, value, options) {
    const key = keyOf(cid)
    if (this.present.has(key)) return cid
    const bytes = await toBytes(value)
    await this.disk.put(cid, bytes, options)
    this.present.add(key)
    this.cache.set(key, bytes)
    return cid
  }

  async * putMany (source, options) {
    for await (const { cid, bytes } of source) yield this.put(cid, bytes, options)
  }

  async * get (cid, options) {
    const key = keyOf(cid)
    if (!this.present.has(key)) throw new NotFoundError(`block ${cid} is not in this repo`)
    let bytes = this.cache.get(key)
    if (bytes === undefined) {
      bytes = await toBytes(this.disk.get(cid, options))
      this.cache.set(key, bytes)
    }
    yield bytes
  }

  async * getMany (source, options) {
    for await (const cid of source) yield { cid, bytes: this.get(cid, options) }
  }

  async delete (cid, options) {
    const key = keyOf(cid)
    this.present.delete(key)
    this.cache.delete(key)
    await this.disk.delete(cid, options)
  }

  async * deleteMany (source, options) {
    for await (const cid of source) {
      await this.delete(cid, options)
      yield cid
    }
  }

  async * getAll (options) {
    yield * this.disk.getAll(options)
  }
}
