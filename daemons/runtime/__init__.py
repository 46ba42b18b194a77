"""What every daemon runs on: service loop, wiring, config, metrics, keys, HTTP."""
