// Run once against the original package: node make-known-answers.cjs PATH/TO/xsalsa20@1.2.0 > known-answers.json
// Known answers from the original xsalsa20 1.2.0 (WASM path): for each case, a key, a nonce,
// the update lengths, and the XOR of a counting-byte input as hex.
const xsalsa20 = require(process.argv[2])
const cases = []
const fill = (n, seed) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 17 + 5) & 255)
const plans = [[1], [63], [64], [65], [1, 1, 1, 61, 1, 64, 3], [7, 13, 129, 64, 200, 5],
  [100, 28, 1000, 1, 63, 64, 65], [4096, 333, 17], [31, 33, 127, 129, 255, 257]]
plans.forEach((sizes, c) => {
  const key = fill(32, 100 + c)
  const nonce = fill(24, 200 + c)
  const x = xsalsa20(nonce, key)
  const total = sizes.reduce((a, b) => a + b, 0)
  const input = fill(total, c)
  const out = []
  let at = 0
  for (const n of sizes) { out.push(Buffer.from(x.update(input.subarray(at, at + n)))); at += n }
  x.final()
  cases.push({ key: Buffer.from(key).toString('hex'), nonce: Buffer.from(nonce).toString('hex'), inputSeed: c, sizes, output: Buffer.concat(out).toString('hex') })
})
process.stdout.write(JSON.stringify({ source: 'xsalsa20@1.2.0 (npm), WebAssembly path', input: 'byte i of case c = (i * 31 + c * 17 + 5) & 255', cases }, null, 1) + '\n')
