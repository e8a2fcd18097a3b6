"""Benchmarks and load generation (`make bench`)."""
