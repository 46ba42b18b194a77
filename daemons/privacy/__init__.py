"""Privacy layers: updates sealed to the org (and auditors), keys, the IPFS swarm key.

`envelope` is the encrypted-update format (docs/security.md, "Envelope format"); `keys` loads
and writes the X25519 key pairs; `swarm_key` writes and reads Kubo's `swarm.key` files for a
libp2p private network. All cryptography comes from libsodium through PyNaCl.
"""
