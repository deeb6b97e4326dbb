"""Benchmarks: enlarger and its peers side by side, each script ending in a key=value line."""
