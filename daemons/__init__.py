"""fedchain daemons: everything with I/O and time (chain, IPFS, org and client services, CLI)."""
