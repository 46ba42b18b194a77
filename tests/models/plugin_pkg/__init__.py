"""A user's task and strategy, as a plug-in package (imported by module path in the tests)."""
