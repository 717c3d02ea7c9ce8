"""Benchmarks (`make bench`): speed and memory figures measured side by side in one run."""
