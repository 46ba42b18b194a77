// Fetching content from the peer that published it instead of from every connected peer.
//
// Helia's bitswap sends each want to every connected peer (with send-DONT_HAVE), each message
// on its own yamux stream, and a cancel to each when the block arrives: a hub with N peers
// pays ~3N streams per block it fetches, and every peer pays for wants it cannot answer.
// A federation knows who published what: the org fetches client X's update, and X's next
// update comes from the same node. So `cat` takes an opaque `source` (fedchain passes the
// submitting client's address); the node remembers which peer delivered that source's last
// root block and next time asks only that peer, through a bitswap session. A block that
// peer does not deliver within HEDGE_MS, or says it does not have, is also wanted the usual
// way (from every peer), and whichever answer comes first is used: a wrong or stale hint
// costs at most HEDGE_MS per fetch, never a failure.

import { peerIdFromCID, peerIdFromString } from '@libp2p/peer-id'
import { connected } from './peering.mjs'

export const HEDGE_MS = 1500
const MAX_SOURCES = 10_000
const MAX_SOURCE_CHARS = 200
const RECEIVE_BLOCK = 'helia:block-broker:receive-block'

/** source name -> peer id string of the node that delivered its last root (oldest dropped). */
export class SourcePeers {
  constructor (max = MAX_SOURCES) {
    this.max = max
    this.peers = new Map()
  }

  get (source) {
    return source == null ? undefined : this.peers.get(source)
  }

  learn (source, peer) {
    if (source == null || peer == null) return
    this.peers.delete(source) // re-insert: Map order is the eviction order
    this.peers.set(source, peer)
    if (this.peers.size > this.max) this.peers.delete(this.peers.keys().next().value)
  }

  forget (source) {
    if (source != null) this.peers.delete(source)
  }
}

/** The `source` query argument: absent, or a short opaque name; else an error message. */
export function sourceArg (params) {
  const source = params.get('source')
  if (source == null || source === '') return { source: null }
  if (source.length > MAX_SOURCE_CHARS) return { error: `source must be at most ${MAX_SOURCE_CHARS} characters` }
  return { source }
}

/** An onProgress callback that records the peer that delivered `root` (a bitswap fetch). */
export function rootDeliveredBy (root, record) {
  return (evt) => {
    if (evt.type !== RECEIVE_BLOCK || !evt.detail.cid.equals(root)) return
    try {
      record(peerIdFromCID(evt.detail.provider).toString())
    } catch { /* not a peer CID: nothing to learn */ }
  }
}

async function collect (chunks) {
  const parts = []
  for await (const chunk of chunks) parts.push(chunk)
  return parts
}

/**
 * A read-only blockstore for one fetch of `root` that asks `peer` first (see the top of this
 * file), or null when `peer` is unknown or not connected now (fetch the usual way).
 * `close()` ends its bitswap session; `state.failed` says whether `peer` let a block down
 * (`onFailed` is called then, once).
 */
export function fromPeer (helia, root, peer, log, onFailed) {
  if (peer == null || !connected(helia.libp2p, peer)) return null
  const store = helia.blockstore
  const session = store.createSession(root, { providers: [peerIdFromString(peer).toCID()] })
  const state = { failed: false }

  async function hedged (cid, options) {
    const done = new AbortController()
    const signal = AbortSignal.any([done.signal, ...(options.signal == null ? [] : [options.signal])])
    let timer
    const viaPeer = collect(session.get(cid, { ...options, signal }))
    const usual = new Promise((resolve) => {
      timer = setTimeout(() => resolve(`no answer within ${HEDGE_MS} ms`), HEDGE_MS)
      viaPeer.catch((err) => resolve(`it does not have it: ${err.message}`))
    }).then((why) => {
      signal.throwIfAborted()
      if (!state.failed) {
        log(`cat ${root}: ${peer} did not deliver ${cid} (${why}); asking every peer`)
        state.failed = true
        onFailed()
      }
      return collect(store.get(cid, { ...options, signal }))
    })
    try {
      return await Promise.any([viaPeer, usual])
    } catch (err) {
      throw options.signal?.aborted ? options.signal.reason : (err.errors?.at(-1) ?? err)
    } finally {
      clearTimeout(timer)
      done.abort()
    }
  }

  return {
    state,
    close: () => session.close(),
    blockstore: {
      async * get (cid, options = {}) {
        // local blocks, and every block after the peer let one down, the usual way
        if (state.failed || await store.has(cid, options)) {
          yield * store.get(cid, options)
          return
        }
        yield * await hedged(cid, options)
      },
      has: (cid, options) => store.has(cid, options)
    }
  }
}
