"""`fedchain verify`: anyone re-derives every settled round from the chain and IPFS."""
