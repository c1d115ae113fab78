"""Benchmarks: each module's main() measures a target against a baseline run in the same process."""
