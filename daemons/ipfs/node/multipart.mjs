// Streaming multipart/form-data reader for the `add` endpoint: yields one part at a
// time with its body as an async iterable, so a 40 MB upload is never held in memory.

const HEADER_END = Buffer.from('\r\n\r\n')

export class MultipartError extends Error {}

/** Returns the boundary of a multipart/form-data Content-Type, or throws MultipartError. */
export function boundaryOf (contentType) {
  const match = /^multipart\/form-data\s*;(.*)$/i.exec(contentType ?? '')
  if (match == null) {
    throw new MultipartError(`expected a multipart/form-data body, got Content-Type "${contentType ?? ''}"`)
  }
  const param = /boundary=(?:"([^"]+)"|([^\s;]+))/i.exec(match[1])
  if (param == null) throw new MultipartError('multipart Content-Type has no boundary')
  return param[1] ?? param[2]
}

/** Byte reader over an async iterable of Buffers with look-ahead search. */
class Reader {
  constructor (source) {
    this.iter = source[Symbol.asyncIterator]()
    this.buf = Buffer.alloc(0)
    this.done = false
  }

  async fill () {
    if (this.done) return false
    const { value, done } = await this.iter.next()
    if (done) { this.done = true; return false }
    this.buf = this.buf.length === 0 ? value : Buffer.concat([this.buf, value])
    return true
  }

  /** Reads up to and excluding `needle`, consuming it; throws at end of input. */
  async readUntil (needle, limit) {
    for (;;) {
      const at = this.buf.indexOf(needle)
      if (at >= 0) {
        const out = this.buf.subarray(0, at)
        this.buf = this.buf.subarray(at + needle.length)
        return out
      }
      if (this.buf.length > limit) throw new MultipartError('multipart header too long')
      if (!await this.fill()) throw new MultipartError('multipart body ended early')
    }
  }

  /** Yields bytes until `needle`, holding back a tail that could start the needle. */
  async * streamUntil (needle) {
    for (;;) {
      const at = this.buf.indexOf(needle)
      if (at >= 0) {
        if (at > 0) yield this.buf.subarray(0, at)
        this.buf = this.buf.subarray(at + needle.length)
        return
      }
      const keep = needle.length - 1
      if (this.buf.length > keep) {
        yield this.buf.subarray(0, this.buf.length - keep)
        this.buf = this.buf.subarray(this.buf.length - keep)
      }
      if (!await this.fill()) throw new MultipartError('multipart body ended inside a part')
    }
  }

  async peek (n) {
    while (this.buf.length < n) {
      if (!await this.fill()) break
    }
    return this.buf.subarray(0, n)
  }
}

function parseHeaders (raw) {
  const headers = {}
  for (const line of raw.toString('latin1').split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const disposition = headers['content-disposition'] ?? ''
  const filename = /filename\*?=(?:"([^"]*)"|([^;\s]*))/i.exec(disposition)
  return { headers, filename: decodeURIComponent((filename?.[1] ?? filename?.[2]) ?? '') }
}

/**
 * Yields `{ headers, filename, body }` for every part of a multipart body.
 * The caller must drain `body` before asking for the next part.
 */
export async function * parts (source, boundary) {
  const reader = new Reader(source)
  const delimiter = Buffer.from(`\r\n--${boundary}`)
  // The first delimiter has no leading CRLF.
  await reader.readUntil(Buffer.from(`--${boundary}`), 64 * 1024)
  for (;;) {
    const after = await reader.peek(2)
    if (after.toString() === '--') return
    // The CRLF after the delimiter is kept so a part without headers parses too.
    const head = await reader.readUntil(HEADER_END, 64 * 1024)
    const { headers, filename } = parseHeaders(head)
    let drained = false
    const body = (async function * () {
      yield * reader.streamUntil(delimiter)
      drained = true
    })()
    yield { headers, filename, body }
    if (!drained) {
      for await (const _ of body) { /* skip the rest of an unread part */ }
    }
  }
}
