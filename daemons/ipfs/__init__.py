"""IPFS: the HTTP client of a node, the bundled Helia node, reachability, blob port."""
