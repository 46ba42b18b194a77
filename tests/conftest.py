"""Shared pytest set-up: fixtures for real components live in tests/fixtures/."""

pytest_plugins = ["tests.fixtures.anvil", "tests.fixtures.ipfs"]
