"""The one-command local testnet: anvil, IPFS nodes, an org and N clients as OS processes."""
