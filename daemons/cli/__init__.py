"""The `fedchain` command line: one module per command group."""
