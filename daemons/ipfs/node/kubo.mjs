// Kubo RPC wire details shared by the handlers: argument parsing, durations, and the
// response and error bodies that Kubo clients (aioipfs, kubo-rpc-client) expect.

import { CID } from 'multiformats/cid'

/** An error a handler raises on purpose: `status` 400 for bad arguments, 500 otherwise. */
export class RpcError extends Error {
  constructor (message, status = 500) {
    super(message)
    this.status = status
  }
}

export const badArg = (message) => new RpcError(message, 400)

/** Kubo's error body: `{"Message", "Code", "Type": "error"}`; Code 1 marks a client error. */
export function sendError (res, status, message) {
  const body = JSON.stringify({ Message: message, Code: status === 400 ? 1 : 0, Type: 'error' })
  if (res.headersSent) {
    // Mid-stream: Kubo reports the failure in the X-Stream-Error trailer.
    res.addTrailers({ 'X-Stream-Error': message })
    res.end()
    return
  }
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) })
  res.end(body)
}

export function sendJson (res, value) {
  const body = JSON.stringify(value) + '\n'
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'X-Chunked-Output': '1'
  })
  res.end(body)
}

/** Starts an NDJSON stream (Kubo's streaming output) and returns a line writer. */
export function startStream (res) {
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'X-Chunked-Output': '1',
    Trailer: 'X-Stream-Error'
  })
  return (value) => res.write(JSON.stringify(value) + '\n')
}

export function boolArg (params, name, fallback) {
  const raw = params.get(name)
  if (raw === null) return fallback
  const value = raw.toLowerCase()
  if (value === 'true' || value === '1' || value === '') return true
  if (value === 'false' || value === '0') return false
  throw badArg(`invalid value "${raw}" for option "${name}": use true or false`)
}

export function intArg (params, name, fallback) {
  const raw = params.get(name)
  if (raw === null || raw === '') return fallback
  if (!/^-?\d+$/.test(raw)) throw badArg(`invalid value "${raw}" for option "${name}": expected an integer`)
  return Number.parseInt(raw, 10)
}

const UNIT_MS = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** Parses a Go duration ("500ms", "1m30s") as Kubo's global `timeout` option does. */
export function parseDuration (raw) {
  const parts = [...raw.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)]
  if (parts.length === 0 || parts.map(p => p[0]).join('') !== raw) {
    throw badArg(`invalid duration "${raw}" for option "timeout": use e.g. 500ms, 10s, 1m`)
  }
  // whole milliseconds, rounded up: AbortSignal.timeout refuses a fraction ("1.2345s")
  return Math.ceil(parts.reduce((total, p) => total + Number.parseFloat(p[1]) * UNIT_MS[p[2]], 0))
}

/** The single `arg` a command needs, with an /ipfs/ prefix stripped. */
export function cidArg (params) {
  const args = params.getAll('arg')
  if (args.length !== 1) throw badArg('argument "ipfs-path" is required (exactly one)')
  return parseCid(args[0])
}

/** Parses "cid", "/ipfs/cid" into a CID; paths inside a DAG are not supported. */
export function parseCid (raw) {
  const path = raw.startsWith('/ipfs/') ? raw.slice('/ipfs/'.length) : raw
  if (path.includes('/')) throw badArg(`"${raw}": paths inside a DAG are not supported by the bundled node; pass a bare CID`)
  try {
    return CID.parse(path)
  } catch (err) {
    throw badArg(`invalid CID "${raw}": ${err.message}`)
  }
}
