"""Benchmarks that print a table and write JSON (never timed assertions in the test suite)."""
