// Handlers for the Kubo RPC subset fedchain uses (`/api/v0/<command>`), on top of Helia.
// Bodies and errors follow Kubo's formats so `aioipfs` works against this node unmodified.

import { once } from 'node:events'
import { unixfs } from '@helia/unixfs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import { base58btc } from 'multiformats/bases/base58'
import { base64 } from 'multiformats/bases/base64'
import * as Digest from 'multiformats/hashes/digest'
import { RpcError, badArg, boolArg, cidArg, intArg, sendJson, startStream } from './kubo.mjs'
import { boundaryOf, parts } from './multipart.mjs'
import { parsePeer } from './peering.mjs'
import { fromPeer, rootDeliveredBy, sourceArg } from './sources.mjs'
import { pinAdd, pinCid, pinLs, pinRm } from './pins.mjs'

export const AGENT_VERSION = 'fedchain-helia/0.1.0/'
// Kubo lays files out as a balanced DAG with at most 174 links per node.
const MAX_CHILDREN_PER_NODE = 174
const DEFAULT_CHUNK_SIZE = 262144
const MAX_CHUNK_SIZE = 1048576
const RAW_CODEC = 0x55
// Tags starting with 'keep-alive' (@libp2p/interface KEEP_ALIVE) mark peers to reconnect.
const KEEP_ALIVE_TAG = 'keep-alive-fedchain'

function addOptions (params) {
  const cidVersion = intArg(params, 'cid-version', 0)
  if (cidVersion !== 0 && cidVersion !== 1) throw badArg(`invalid cid-version ${cidVersion}: use 0 or 1`)
  const chunker = params.get('chunker') ?? `size-${DEFAULT_CHUNK_SIZE}`
  const size = /^size-(\d+)$/.exec(chunker)
  if (size == null) throw badArg(`chunker "${chunker}" is not supported by the bundled node: use size-<bytes>`)
  const chunkSize = Number.parseInt(size[1], 10)
  if (chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) throw badArg(`chunker size must be 1..${MAX_CHUNK_SIZE} bytes`)
  const hash = params.get('hash') ?? 'sha2-256'
  if (hash !== 'sha2-256') throw badArg(`hash "${hash}" is not supported by the bundled node: use sha2-256`)
  for (const flag of ['trickle', 'wrap-with-directory', 'inline', 'nocopy']) {
    if (boolArg(params, flag, false)) throw badArg(`option "${flag}" is not supported by the bundled node`)
  }
  return {
    cidVersion,
    // As in Kubo, CIDv1 implies raw leaves unless told otherwise.
    rawLeaves: boolArg(params, 'raw-leaves', cidVersion === 1),
    chunkSize,
    pin: boolArg(params, 'pin', true),
    onlyHash: boolArg(params, 'only-hash', false),
    progress: boolArg(params, 'progress', false)
  }
}

/** A blockstore that keeps nothing and counts the bytes it is given (for only-hash and Size). */
function countingStore (inner) {
  const store = {
    bytes: 0,
    async put (cid, bytes, options) {
      store.bytes += bytes.length
      if (inner != null) await inner.put(cid, bytes, options)
      return cid
    }
  }
  return store
}

async function importFile (body, blockstore, opts, signal) {
  let root
  for await (const entry of importer({ content: body }, blockstore, {
    cidVersion: opts.cidVersion,
    rawLeaves: opts.rawLeaves,
    chunker: fixedSize({ chunkSize: opts.chunkSize }),
    layout: balanced({ maxChildrenPerNode: MAX_CHILDREN_PER_NODE }),
    reduceSingleLeafToSelf: true,
    signal
  })) {
    root = entry
  }
  return root
}

async function add (ctx) {
  const opts = addOptions(ctx.params)
  const boundary = boundaryOf(ctx.req.headers['content-type'])
  const lines = []
  for await (const part of parts(ctx.req, boundary)) {
    if ((part.headers['content-type'] ?? '').startsWith('application/x-directory')) {
      throw badArg('directories are not supported by the bundled node; add one file at a time')
    }
    const store = countingStore(opts.onlyHash ? null : ctx.helia.blockstore)
    const entry = await importFile(part.body, store, opts, ctx.signal)
    if (opts.pin && !opts.onlyHash) await pinCid(ctx.helia, entry.cid, true, ctx.signal)
    const hash = entry.cid.toString()
    if (opts.progress) lines.push({ Name: part.filename || hash, Bytes: Number(entry.size) })
    lines.push({ Name: part.filename || hash, Hash: hash, Size: String(store.bytes) })
    ctx.log(`add ${hash} (${entry.size} bytes, pin=${opts.pin && !opts.onlyHash})`)
  }
  if (lines.length === 0) throw badArg('argument "path" is required: send a file in the multipart body')
  const write = startStream(ctx.res)
  for (const line of lines) write(line)
  ctx.res.end()
}

/**
 * Kubo's `cat`, plus `source` (fedchain's; Kubo keeps query options it does not know and
 * ignores them): who published `arg`, so it is asked first (sources.mjs).
 */
async function cat (ctx) {
  const cid = cidArg(ctx.params)
  const offset = intArg(ctx.params, 'offset', 0)
  const length = intArg(ctx.params, 'length', undefined)
  if (offset < 0) throw badArg('cannot specify negative offset')
  if (length !== undefined && length < 0) throw badArg('cannot specify negative length')
  const { source, error } = sourceArg(ctx.params)
  if (error != null) throw badArg(error)
  // a peer that lets a block down is forgotten (the one that delivers the root instead is learned)
  const peer = ctx.sources.get(source)
  const hinted = fromPeer(ctx.helia, cid, peer, ctx.log, () => ctx.sources.forget(source))
  if (hinted != null) ctx.log(`cat ${cid}: asking ${peer} first (source ${source})`)
  const fs = hinted == null ? ctx.fs : unixfs({ blockstore: hinted.blockstore })
  try {
    await catFrom(ctx, cid, offset, length, fs, source)
  } finally {
    hinted?.close()
  }
}

async function catFrom (ctx, cid, offset, length, fs, source) {
  // the peer that delivered the root serves this source next time (its blocks stay here)
  const onProgress = rootDeliveredBy(cid, (peer) => ctx.sources.learn(source, peer))
  const stat = await fs.stat(cid, { signal: ctx.signal, onProgress })
  if (stat.type === 'directory') throw new RpcError('this dag node is a directory')
  const size = Number(stat.size)
  const start = Math.min(offset, size)
  const count = length === undefined ? size - start : Math.min(length, size - start)
  ctx.res.writeHead(200, {
    'Content-Type': 'text/plain',
    'X-Stream-Output': '1',
    'X-Content-Length': String(count),
    Trailer: 'X-Stream-Error'
  })
  if (count > 0) {
    for await (const chunk of fs.cat(cid, { offset: start, length: count, signal: ctx.signal })) {
      if (ctx.clientSignal.aborted) return // gone: the block it waited for is stored now
      if (!ctx.res.write(chunk)) await once(ctx.res, 'drain', { signal: ctx.clientSignal })
    }
  }
  ctx.res.end()
}

function selfAddresses (libp2p) {
  return libp2p.getMultiaddrs().map(String)
}

async function id (ctx) {
  const libp2p = ctx.helia.libp2p
  const self = libp2p.peerId.toString()
  const arg = ctx.params.get('arg')
  if (arg != null && arg !== self) {
    const conn = libp2p.getConnections().find(c => c.remotePeer.toString() === arg)
    if (conn == null) throw new RpcError(`peer ${arg} is not connected to the bundled node`)
    sendJson(ctx.res, { ID: arg, Addresses: [conn.remoteAddr.toString()], AgentVersion: '', Protocols: [] })
    return
  }
  const mh = libp2p.peerId.toMultihash()
  sendJson(ctx.res, {
    ID: self,
    // An identity multihash carries the protobuf-encoded public key, as Kubo prints it.
    PublicKey: mh.code === 0 ? base64.baseEncode(mh.digest) : '',
    Addresses: selfAddresses(libp2p),
    AgentVersion: AGENT_VERSION,
    ProtocolVersion: 'ipfs/0.1.0',
    Protocols: libp2p.getProtocols()
  })
}

function version (ctx) {
  sendJson(ctx.res, {
    Version: '0.1.0-fedchain-helia',
    Commit: '',
    Repo: '1',
    System: `${process.arch}/${process.platform}`,
    Golang: `node-${process.version}`
  })
}

/** An `arg` multiaddr with its /p2p/ id, or Kubo's "bad argument" error naming what is wrong. */
function peerTarget (raw) {
  try {
    return parsePeer(raw, 'multiaddr')
  } catch (err) {
    throw badArg(err.message)
  }
}

async function swarmConnect (ctx) {
  const addrs = peerArgs(ctx, 'address')
  const lines = []
  for (const raw of addrs) {
    const target = peerTarget(raw)
    try {
      const conn = await ctx.helia.libp2p.dial(target.addr, { signal: ctx.signal })
      // tagged keep-alive: libp2p's connection manager never prunes it
      await ctx.helia.libp2p.peerStore.merge(conn.remotePeer, { tags: { [KEEP_ALIVE_TAG]: { value: 1 } } })
    } catch (err) {
      throw new RpcError(`connect ${target.peer} failure: ${err.message}`)
    }
    // Like Kubo's Peering.Peers: redialed when the connection drops and after a restart
    await ctx.peering.remember(target)
    lines.push(`connect ${target.peer} success`)
  }
  sendJson(ctx.res, { Strings: lines })
}

const LIBP2P_KEY_CODEC = 0x72

/** A peer id as Kubo prints it: a base58btc multihash, or a CIDv1 with the libp2p-key codec. */
function isPeerId (id) {
  try {
    if (id.startsWith('1') || id.startsWith('Q')) return Digest.decode(base58btc.baseDecode(id)) != null
    return CID.parse(id).code === LIBP2P_KEY_CODEC
  } catch {
    return false
  }
}

function peerArgs (ctx, what) {
  const raws = ctx.params.getAll('arg')
  if (raws.length === 0) throw badArg(`argument "${what}" is required`)
  return raws
}

/** Kubo's `swarm peering add`: keep these peers connected (dialed now and whenever the
 * connection is gone), across restarts; unlike `swarm/connect`, the peer need not be up. */
async function swarmPeeringAdd (ctx) {
  const targets = peerArgs(ctx, 'address').map(peerTarget)
  const write = startStream(ctx.res)
  for (const target of targets) {
    await ctx.peering.remember(target)
    write({ ID: target.peer, Status: 'success' })
  }
  ctx.res.end()
}

function swarmPeeringLs (ctx) {
  sendJson(ctx.res, { Peers: ctx.peering.list() })
}

/** Kubo's `swarm peering rm`: stop keeping these peers (ids) connected; the open connection
 * stays, but libp2p's connection manager may now close it (its keep-alive tag goes). */
async function swarmPeeringRm (ctx) {
  const ids = peerArgs(ctx, 'ID')
  for (const id of ids) {
    if (!isPeerId(id)) throw badArg(`${id}: not a peer id (base58btc 12D3Koo…/Qm… or a libp2p-key CID)`)
  }
  const write = startStream(ctx.res)
  for (const id of ids) {
    await ctx.peering.forget(id)
    for (const p of await ctx.helia.libp2p.peerStore.all()) {
      if (p.id.toString() === id) await ctx.helia.libp2p.peerStore.merge(p.id, { tags: { [KEEP_ALIVE_TAG]: undefined } })
    }
    write({ ID: id, Status: 'success' })
  }
  ctx.res.end()
}

function swarmPeers (ctx) {
  const peers = ctx.helia.libp2p.getConnections().map(c => ({
    Addr: c.remoteAddr.decapsulateCode(421).toString(),
    Peer: c.remotePeer.toString(),
    Direction: c.direction === 'inbound' ? 1 : 2
  }))
  sendJson(ctx.res, { Peers: peers })
}

async function blockStat (ctx) {
  const cid = cidArg(ctx.params)
  const offline = boolArg(ctx.params, 'offline', false)
  if (offline && !await ctx.helia.blockstore.has(cid, { signal: ctx.signal })) {
    throw new RpcError(`block was not found locally (offline): ipld: could not find ${cid}`)
  }
  let size = 0
  for await (const chunk of ctx.helia.blockstore.get(cid, { signal: ctx.signal, offline })) size += chunk.length
  sendJson(ctx.res, { Key: cid.toString(), Size: size })
}

async function repoGc (ctx) {
  const quiet = boolArg(ctx.params, 'quiet', false)
  const removed = []
  const errors = []
  await ctx.helia.gc({
    signal: ctx.signal,
    onProgress: (evt) => {
      // Blocks are keyed by multihash; like Kubo, report each as a CIDv1 with the raw codec.
      if (evt.type === 'helia:gc:deleted') removed.push(CID.createV1(RAW_CODEC, evt.detail.multihash).toString())
      if (evt.type === 'helia:gc:error') errors.push(evt.detail.message)
    }
  })
  ctx.log(`repo/gc removed ${removed.length} blocks`)
  const write = startStream(ctx.res)
  if (!quiet) for (const cid of removed) write({ Key: { '/': cid } })
  for (const message of errors) write({ Error: message })
  ctx.res.end()
}

export const COMMANDS = {
  add,
  cat,
  'pin/add': pinAdd,
  'pin/rm': pinRm,
  'pin/ls': pinLs,
  id,
  version,
  'swarm/connect': swarmConnect,
  'swarm/peers': swarmPeers,
  'swarm/peering/add': swarmPeeringAdd,
  'swarm/peering/ls': swarmPeeringLs,
  'swarm/peering/rm': swarmPeeringRm,
  'block/stat': blockStat,
  'repo/gc': repoGc
}
