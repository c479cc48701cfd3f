"""Benchmarks: each measures scrm against its anchor in one run and ends with one JSON line."""
