#!/usr/bin/env node
// Compile contracts/FederatedRounds.sol with the pinned npm solc (standard-json input,
// EVM target shanghai unless --evm-version says otherwise, optimizer on) and write the
// artifact the Python binding loads. An older target (e.g. paris: no PUSH0) is for nodes
// whose chain rules predate Shanghai.
// Usage: node scripts/compile_contract.mjs [--evm-version NAME] [OUTPUT_JSON]
//        (default: shanghai, contracts/FederatedRounds.json)
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const solc = require('solc')

const CONTRACT = 'FederatedRounds'
const args = process.argv.slice(2)
const flag = args.indexOf('--evm-version')
const EVM_VERSION = flag >= 0 ? args.splice(flag, 2)[1] : 'shanghai'
if (!EVM_VERSION) {
  console.error('compile_contract: --evm-version needs a name (e.g. paris, shanghai, cancun)')
  process.exit(2)
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const sourcePath = join(root, 'contracts', `${CONTRACT}.sol`)
const outPath = resolve(args[0] ?? join(root, 'contracts', `${CONTRACT}.json`))

const source = readFileSync(sourcePath, 'utf8')
const input = {
  language: 'Solidity',
  sources: { [`${CONTRACT}.sol`]: { content: source } },
  settings: {
    evmVersion: EVM_VERSION,
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
}

const output = JSON.parse(solc.compile(JSON.stringify(input)))
const problems = (output.errors ?? []).filter((e) => e.severity === 'error')
for (const e of output.errors ?? []) console.error(e.formattedMessage)
if (problems.length > 0) {
  console.error(`compile_contract: ${problems.length} error(s) in ${sourcePath}`)
  process.exit(1)
}

const compiled = output.contracts[`${CONTRACT}.sol`][CONTRACT]
const artifact = {
  contractName: CONTRACT,
  abi: compiled.abi,
  bytecode: '0x' + compiled.evm.bytecode.object,
  deployedBytecode: '0x' + compiled.evm.deployedBytecode.object,
  compiler: `solc-js ${solc.version()}`,
  evmVersion: EVM_VERSION,
  sourceSha256: createHash('sha256').update(source).digest('hex'),
}
writeFileSync(outPath, JSON.stringify(artifact, null, 2) + '\n')
console.log(`compile_contract: wrote ${outPath} (${compiled.evm.deployedBytecode.object.length / 2} bytes runtime)`)
