// Kubo's `Peering.Peers` for the bundled node: stay connected to the peers given with
// `--peer MULTIADDR`, dialing at start and again whenever the connection is gone (a peer
// that is not up yet, or a link cut and restored), so blobs move by bitswap without waiting
// for anyone to run `swarm connect`. Peers a client asked for with `swarm/connect` are kept
// the same way and remembered in REPO/peering.json, so a restarted node dials them again
// (libp2p's own peer records live in memory: node.mjs, peersInMemory).

import { readFile, rename, writeFile } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'

// Kubo's peering service backs off from 5 s up to 10 min; a federation round lasts minutes,
// so keep the ceiling short enough that a restored link is used within the round.
const FIRST_RETRY_MS = 1000
const MAX_RETRY_MS = 15_000

/** One peer address to keep: `{ raw, addr, peer }`; throws naming `what` if it cannot be dialed. */
export function parsePeer (raw, what = '--peer') {
  let addr
  try {
    addr = multiaddr(raw)
  } catch (err) {
    throw new Error(`${what} ${raw}: not a multiaddr (${err.message}); use /ip4/HOST/tcp/PORT/p2p/PEER_ID`)
  }
  const peer = /\/p2p\/([^/]+)$/.exec(raw)?.[1]
  if (peer == null) throw new Error(`${what} ${raw}: no /p2p/<peer id> part; use /ip4/HOST/tcp/PORT/p2p/PEER_ID`)
  return { raw, addr, peer }
}

/** Parses the `--peer` values, failing on an address that could never be dialed. */
export function parsePeers (raws) {
  return (raws ?? []).map((raw) => parsePeer(raw))
}

/** Whether `libp2p` has an open connection to `peer` (a peer id string). */
export function connected (libp2p, peer) {
  return libp2p.getConnections().some((c) => c.remotePeer.toString() === peer)
}

/** Keeps one peer connected: dial now, then check and redial with capped backoff. */
function keepPeer (libp2p, target, log, isStopped) {
  let delay = FIRST_RETRY_MS
  const tick = async () => {
    if (isStopped()) return
    if (connected(libp2p, target.peer)) {
      delay = FIRST_RETRY_MS
    } else {
      try {
        await libp2p.dial(target.addr, { signal: AbortSignal.timeout(10_000) })
        log(`peering: connected to ${target.raw}`)
        delay = FIRST_RETRY_MS
      } catch (err) {
        log(`peering: cannot reach ${target.raw} (${err.message}); retrying in ${delay} ms`)
        delay = Math.min(delay * 2, MAX_RETRY_MS)
      }
    }
    if (!isStopped()) setTimeout(tick, connected(libp2p, target.peer) ? FIRST_RETRY_MS : delay).unref()
  }
  tick()
}

/**
 * The peers this node keeps connected: the `--peer` ones, and those `remember`ed (from
 * `swarm/connect`), which are written to `file` and kept again after a restart.
 */
export class Peering {
  constructor (libp2p, file, log) {
    this.libp2p = libp2p
    this.file = file
    this.log = log
    this.kept = new Map() // peer id -> target
    this.remembered = new Map() // peer id -> raw multiaddr, as in `file`
    this.stopped = false
  }

  /** Keeps the `--peer` targets and the peers remembered in `file` (a bad file is logged). */
  async start (targets) {
    for (const target of targets) this.keep(target)
    for (const raw of await this.#readFile()) {
      try {
        const target = parsePeer(raw, this.file)
        this.remembered.set(target.peer, raw)
        this.keep(target)
      } catch (err) {
        this.log(`peering: skipping a remembered peer: ${err.message}`)
      }
    }
  }

  /** Keeps `target` connected (if not kept already: the first address given wins). */
  keep (target) {
    if (this.stopped || this.kept.has(target.peer)) return
    this.kept.set(target.peer, target)
    // its loop ends when the node stops or the peer is `forget`-ten (or kept anew)
    keepPeer(this.libp2p, target, this.log, () => this.stopped || this.kept.get(target.peer) !== target)
  }

  /** Keeps `target` and remembers it across restarts (its latest address). */
  async remember (target) {
    this.keep(target)
    if (this.remembered.get(target.peer) === target.raw) return
    this.remembered.set(target.peer, target.raw)
    await this.#writeFile()
  }

  /**
   * Stops keeping `peer` (an id) connected and forgets it (Kubo's `swarm peering rm`): its
   * redial loop ends and it leaves peering.json. A `--peer` one is kept again after a
   * restart, as Kubo's `Peering.Peers` from the config are. The connection stays open.
   */
  async forget (peer) {
    const known = this.kept.delete(peer)
    if (this.remembered.delete(peer)) await this.#writeFile()
    if (known) this.log(`peering: no longer keeping ${peer}`)
    return known
  }

  /** The peers kept connected, as Kubo's `swarm peering ls` lists them. */
  list () {
    return [...this.kept.values()].map((t) => ({ ID: t.peer, Addrs: [t.addr.decapsulateCode(421).toString()] }))
  }

  async #writeFile () {
    const tmp = `${this.file}.${process.pid}.tmp`
    await writeFile(tmp, JSON.stringify({ peers: [...this.remembered.values()] }, null, 1) + '\n')
    await rename(tmp, this.file) // whole or not at all
  }

  stop () {
    this.stopped = true
  }

  async #readFile () {
    let text
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err) {
      if (err.code === 'ENOENT') return []
      this.log(`peering: cannot read ${this.file} (${err.message}): no remembered peers`)
      return []
    }
    try {
      const peers = JSON.parse(text).peers
      if (Array.isArray(peers) && peers.every((p) => typeof p === 'string')) return peers
    } catch { /* reported below */ }
    this.log(`peering: ${this.file} is not {"peers": [multiaddr, ...]}: no remembered peers`)
    return []
  }
}
