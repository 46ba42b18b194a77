// Pin commands of the Kubo RPC subset: pin/add, pin/rm, pin/ls (recursive and direct pins
// on Helia's pinning, which survives restarts because it lives in the datastore).

import { RpcError, badArg, boolArg, parseCid, sendJson, startStream } from './kubo.mjs'

async function isPinRoot (helia, cid, signal) {
  try {
    await helia.pins.get(cid, { signal })
    return true
  } catch {
    return false
  }
}

export async function pinCid (helia, cid, recursive, signal) {
  if (await isPinRoot(helia, cid, signal)) return
  for await (const _ of helia.pins.add(cid, { signal, depth: recursive ? Infinity : 0 })) { /* walk the DAG */ }
}

export async function pinAdd (ctx) {
  const cids = ctx.params.getAll('arg').map(parseCid)
  if (cids.length === 0) throw badArg('argument "ipfs-path" is required')
  const recursive = boolArg(ctx.params, 'recursive', true)
  for (const cid of cids) await pinCid(ctx.helia, cid, recursive, ctx.signal)
  sendJson(ctx.res, { Pins: cids.map(String) })
}

export async function pinRm (ctx) {
  const cids = ctx.params.getAll('arg').map(parseCid)
  if (cids.length === 0) throw badArg('argument "ipfs-path" is required')
  for (const cid of cids) {
    if (!await isPinRoot(ctx.helia, cid, ctx.signal)) throw new RpcError('not pinned or pinned indirectly')
  }
  for (const cid of cids) {
    for await (const _ of ctx.helia.pins.rm(cid, { signal: ctx.signal })) { /* walk the DAG */ }
  }
  sendJson(ctx.res, { Pins: cids.map(String) })
}

const pinType = (pin) => (pin.depth === 0 ? 'direct' : 'recursive')

export async function pinLs (ctx) {
  const wanted = ctx.params.get('type') ?? 'all'
  if (!['all', 'recursive', 'direct', 'indirect'].includes(wanted)) {
    throw badArg(`invalid type "${wanted}": use all, recursive, direct or indirect`)
  }
  const keys = {}
  const args = ctx.params.getAll('arg').map(parseCid)
  for (const cid of args) {
    const type = await pinTypeOf(ctx.helia, cid, ctx.signal)
    if (type == null || (wanted !== 'all' && wanted !== type)) throw new RpcError(`path '${cid}' is not pinned`)
    keys[cid.toString()] = { Type: type }
  }
  if (args.length === 0) {
    for await (const pin of ctx.helia.pins.ls({ signal: ctx.signal })) {
      if (wanted === 'all' || wanted === pinType(pin)) keys[pin.cid.toString()] = { Type: pinType(pin) }
    }
  }
  if (boolArg(ctx.params, 'stream', false)) {
    const write = startStream(ctx.res)
    for (const [cid, { Type }] of Object.entries(keys)) write({ Cid: cid, Type })
    ctx.res.end()
    return
  }
  sendJson(ctx.res, { Keys: keys })
}

async function pinTypeOf (helia, cid, signal) {
  try {
    return pinType(await helia.pins.get(cid, { signal }))
  } catch {
    return (await helia.pins.isPinned(cid, { signal })) ? 'indirect' : null
  }
}
