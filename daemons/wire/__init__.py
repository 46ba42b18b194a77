"""Wire formats of the daemons' JSON documents (round config, manifest): pure, no I/O."""
