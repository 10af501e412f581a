"""Benchmark scripts; each writes JSON and a PNG under ``benchmarks/results/`` (git-ignored)."""
