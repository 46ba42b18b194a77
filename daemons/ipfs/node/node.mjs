// fedchain's bundled IPFS node: Helia with bitswap over loopback TCP, a filesystem
// blockstore and datastore under --repo, and a Kubo-RPC-compatible HTTP API on 127.0.0.1.
// Run with Node >= 22. Prints one JSON "ready" line (and writes --ready-file) when serving.

import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { MemoryDatastore, MountDatastore } from 'datastore-core'
import { FsDatastore } from 'datastore-fs'
import { createHelia } from 'helia'
import { Key } from 'interface-datastore'
import { backendNote as pnetCipher } from 'xsalsa20'
import { IndexedFsBlockstore } from './blockstore.mjs'
import { RpcError, parseDuration, sendError } from './kubo.mjs'
import { Peering, parsePeers } from './peering.mjs'
import { COMMANDS } from './rpc.mjs'
import { SourcePeers } from './sources.mjs'

const API_PREFIX = '/api/v0/'
const STREAM_READ_BUFFER_BYTES = 256 * 1024 * 1024

function log (message) {
  process.stderr.write(`${new Date().toISOString()} ipfs-node ${message}\n`)
}

function parseOptions () {
  const { values } = parseArgs({
    options: {
      repo: { type: 'string' },
      'api-port': { type: 'string', default: '0' },
      'swarm-port': { type: 'string', default: '0' },
      // the libp2p listen address: loopback unless peers on other hosts must reach this node
      'swarm-host': { type: 'string', default: '127.0.0.1' },
      peer: { type: 'string', multiple: true, default: [] },
      'ready-file': { type: 'string' },
      'swarm-key': { type: 'string' },
      'parent-pid': { type: 'string' },
      'exit-on-stdin-close': { type: 'boolean', default: false }
    }
  })
  if (values.repo == null) throw new Error('--repo DIR is required (where blocks, pins and the peer key live)')
  const port = (name) => {
    const n = Number.parseInt(values[name], 10)
    if (!(n >= 0 && n <= 65535)) throw new Error(`--${name} must be a TCP port 0..65535 (0 = any free port)`)
    return n
  }
  return {
    ...values,
    apiPort: port('api-port'),
    swarmPort: port('swarm-port'),
    swarmListen: listenAddr(values['swarm-host'], port('swarm-port')),
    peers: parsePeers(values.peer)
  }
}

/** `/ip4/HOST/tcp/PORT` (or /ip6/) for --swarm-host; a name would need DNS, so IPs only. */
function listenAddr (host, port) {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return `/ip4/${host}/tcp/${port}`
  if (host.includes(':')) return `/ip6/${host}/tcp/${port}`
  throw new Error(`--swarm-host ${host}: use an IP address (127.0.0.1, 0.0.0.0, an interface's IP or ::)`)
}

function isAlive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

/** One node per repo (as Kubo's repo.lock); a lock left by a killed node is taken over. */
async function lockRepo (repo) {
  const path = join(repo, 'repo.lock')
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10)
    if (pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new Error(`repo ${repo} is in use by process ${pid}: stop that node or pass another --repo`)
    }
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
  await writeFile(path, String(process.pid))
  return path
}

/**
 * The private-network key, as Kubo finds it: --swarm-key FILE, else REPO/swarm.key if present.
 * LIBP2P_FORCE_PNET=1 (Kubo's variable) refuses to start without one.
 */
async function loadSwarmKey (repo, file) {
  const path = file ?? join(repo, 'swarm.key')
  let psk
  try {
    psk = await readFile(path)
  } catch (err) {
    if (err.code !== 'ENOENT' || file != null) throw new Error(`cannot read swarm key ${path}: ${err.message}`)
  }
  if (psk == null && process.env.LIBP2P_FORCE_PNET === '1') {
    throw new Error(`LIBP2P_FORCE_PNET=1 but no swarm key: pass --swarm-key FILE or put one at ${path}`)
  }
  if (psk != null) preSharedKey({ psk })() // a malformed key file fails here, at start
  return psk == null ? null : { psk, path }
}

/**
 * libp2p's datastore: `datastore`, except peer records, which stay in memory (as Kubo's
 * peerstore does). libp2p 3 rewrites a peer's record on every stream opened or accepted
 * (peer-store 12's merge always puts), and bitswap opens a stream per message: on disk that
 * was a file created and renamed per message (two thirds of a hub node's file creations;
 * ext4 inode allocation was ~15% of its CPU). After a restart, peers come back from --peer
 * and peering.json (peering.mjs), not from libp2p's records.
 */
function peersInMemory (datastore) {
  return new MountDatastore([
    { prefix: new Key('/peers'), datastore: new MemoryDatastore() },
    { prefix: new Key('/'), datastore }
  ])
}

async function startHelia (repo, swarmListen, swarmKey = null) {
  const blockstore = new IndexedFsBlockstore(join(repo, 'blocks'))
  const datastore = new FsDatastore(join(repo, 'datastore'))
  await blockstore.open()
  await datastore.open()
  const helia = createHelia({
    blockstore,
    datastore,
    // Only TCP on --swarm-host (loopback by default) and the --peer nodes: no bootstrap,
    // DHT, mDNS, relays, or public HTTP gateways.
    libp2p: {
      datastore: peersInMemory(datastore),
      addresses: { listen: [swarmListen] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      // A busy receiver may take a while to read a bitswap stream; yamux's default 4 MB read
      // buffer then aborts it and the blocks are lost (the want hangs). Allow whole blobs.
      streamMuxers: [yamux({ streamOptions: { maxReadBufferLength: STREAM_READ_BUFFER_BYTES } })],
      peerDiscovery: [],
      // Every peer of a local testnet dials from 127.0.0.1: libp2p's per-host limit of 5
      // inbound connections a second would refuse the 6th client's node.
      connectionManager: { inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 256 },
      services: { identify: identify() },
      // A private network: every connection is XSalsa20-wrapped with the pre-shared key
      // before the noise handshake, so a node without the key cannot even start one.
      ...(swarmKey == null ? {} : { connectionProtector: preSharedKey({ psk: swarmKey.psk }) })
    },
    http: { delegatedRouters: [], recursiveGateways: [] }
  })
  await helia.start()
  return helia
}

// How long the work of a request goes on after its client hung up (below).
const CLOSE_GRACE_MS = 30_000

// Two signals per request: `client` ends when the client hangs up (stop writing to it);
// `work` (fetches, pins) ends at the request's `timeout`, or CLOSE_GRACE_MS after the client
// hung up. Not at once: Helia's bitswap never tells a peer that a want was cancelled, and a
// peer that sent a block remembers it sent it and ignores the same want again, so a block
// still on the way when its want was cancelled was dropped here and a later fetch of it from
// that peer hung until its timeout (a daemon killed mid-fetch and restarted, or a client that
// gave up, left its blob unfetchable; tests/daemons/test_ipfs_node.py). Going on, the block
// lands in the blockstore, and a new request for it in the meantime joins the same want.
function requestSignals (req, res, params) {
  const client = new AbortController()
  const work = new AbortController()
  res.on('close', () => {
    client.abort(new Error('client closed the request'))
    if (res.writableFinished) return // the reply went out whole: no work left, hold nothing
    setTimeout(() => work.abort(new Error('client closed the request')), CLOSE_GRACE_MS).unref()
  })
  const timeout = params.get('timeout')
  if (timeout == null || timeout === '') return { client: client.signal, work: work.signal }
  const deadline = AbortSignal.timeout(parseDuration(timeout))
  return { client: client.signal, work: AbortSignal.any([work.signal, deadline]) }
}

function errorMessage (err, signal) {
  if (signal?.aborted && signal.reason?.name === 'TimeoutError') return 'context deadline exceeded'
  return err?.message ?? String(err)
}

function makeHandler (helia, peering) {
  const fs = unixfs(helia)
  const sources = new SourcePeers()
  return async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1')
    const name = url.pathname.startsWith(API_PREFIX) ? url.pathname.slice(API_PREFIX.length) : null
    const command = name == null ? undefined : COMMANDS[name]
    if (command === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' })
      res.end('404 page not found')
      return
    }
    if (req.method !== 'POST') {
      sendError(res, 405, `method ${req.method} not allowed: the RPC API takes POST`)
      return
    }
    let signal
    try {
      const signals = requestSignals(req, res, url.searchParams)
      signal = signals.work
      const ctx = { req, res, params: url.searchParams, signal, clientSignal: signals.client }
      await command({ ...ctx, helia, fs, log, peering, sources })
    } catch (err) {
      const status = err instanceof RpcError ? err.status : 500
      const message = errorMessage(err, signal)
      log(`${name} failed: ${message}`)
      try { sendError(res, status, message) } catch { /* the client is gone */ }
    }
  }
}

function listen (server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve(server.address().port))
  })
}

function watchParent (options, shutdown) {
  if (options['exit-on-stdin-close']) {
    process.stdin.on('end', () => shutdown('stdin closed'))
    process.stdin.on('error', () => shutdown('stdin closed'))
    process.stdin.resume()
  }
  if (options['parent-pid'] != null) {
    const ppid = Number.parseInt(options['parent-pid'], 10)
    setInterval(() => {
      try { process.kill(ppid, 0) } catch { shutdown(`parent ${ppid} is gone`) }
    }, 1000).unref()
  }
}

async function writeReady (file, info) {
  const line = JSON.stringify(info)
  if (file != null) {
    await writeFile(`${file}.tmp`, line)
    await rename(`${file}.tmp`, file)
  }
  process.stdout.write(line + '\n')
}

async function main () {
  const options = parseOptions()
  await mkdir(options.repo, { recursive: true })
  const lock = await lockRepo(options.repo)
  const swarmKey = await loadSwarmKey(options.repo, options['swarm-key'])
  const helia = await startHelia(options.repo, options.swarmListen, swarmKey)
  const peering = new Peering(helia.libp2p, join(options.repo, 'peering.json'), log)
  await peering.start(options.peers)
  const server = createServer(makeHandler(helia, peering))
  server.requestTimeout = 0
  // Outlive clients' idle keep-alive (aiohttp: 15 s) so a reused connection is never
  // closed under a request that is just being written.
  server.keepAliveTimeout = 120_000
  server.headersTimeout = 125_000
  const apiPort = await listen(server, options.apiPort)
  let stopping = false
  const shutdown = async (why) => {
    if (stopping) return
    stopping = true
    log(`stopping: ${why}`)
    setTimeout(() => process.exit(1), 5000).unref()
    server.close()
    server.closeAllConnections()
    peering.stop()
    await helia.stop()
    await rm(lock, { force: true })
    process.exit(0)
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
  watchParent(options, shutdown)
  const peerId = helia.libp2p.peerId.toString()
  const swarm = helia.libp2p.getMultiaddrs().map(String)
  const privateNetwork = swarmKey != null
  await writeReady(options['ready-file'], { api: `http://127.0.0.1:${apiPort}`, peer_id: peerId, swarm, pid: process.pid, private_network: privateNetwork })
  log(`ready: api http://127.0.0.1:${apiPort} peer ${peerId} swarm ${swarm.join(' ')}`)
  log(privateNetwork ? `private network: swarm key ${swarmKey.path}, cipher ${pnetCipher}` : 'public network: no swarm key')
}

main().catch((err) => {
  log(`fatal: ${err.stack ?? err}`)
  process.exit(1)
})
