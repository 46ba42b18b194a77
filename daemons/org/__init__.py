"""The org daemon: opens rounds, judges updates, aggregates, publishes, closes (issue 5)."""
