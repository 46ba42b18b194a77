"""Local EVM dev nodes for the testnet and the tests: anvil, ganache, hardhat."""
