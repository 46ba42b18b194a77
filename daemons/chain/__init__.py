"""Chain adapter: durable event tailing, the SQLite state store, the signed-tx outbox."""
