// Kubo's `Peering.Peers` for the bundled node: stay connected to the peers given with
// `--peer MULTIADDR`, dialing at start and again whenever the connection is gone (a peer
// that is not up yet, or a link cut and restored), so blobs move by bitswap without waiting
// for anyone to run `swarm connect`.

import { multiaddr } from '@multiformats/multiaddr'

// Kubo's peering service backs off from 5 s up to 10 min; a federation round lasts minutes,
// so keep the ceiling short enough that a restored link is used within the round.
const FIRST_RETRY_MS = 1000
const MAX_RETRY_MS = 15_000

/** Parses the `--peer` values, failing on an address that could never be dialed. */
export function parsePeers (raws) {
  return (raws ?? []).map((raw) => {
    let addr
    try {
      addr = multiaddr(raw)
    } catch (err) {
      throw new Error(`--peer ${raw}: not a multiaddr (${err.message}); use /ip4/HOST/tcp/PORT/p2p/PEER_ID`)
    }
    const peer = /\/p2p\/([^/]+)$/.exec(raw)?.[1]
    if (peer == null) throw new Error(`--peer ${raw}: no /p2p/<peer id> part; use /ip4/HOST/tcp/PORT/p2p/PEER_ID`)
    return { raw, addr, peer }
  })
}

function connected (libp2p, peer) {
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

/** Starts keeping every `--peer` connected; returns a function that stops it. */
export function startPeering (libp2p, targets, log) {
  let stopped = false
  for (const target of targets) keepPeer(libp2p, target, log, () => stopped)
  return () => { stopped = true }
}
