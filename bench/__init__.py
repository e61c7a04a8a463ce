"""Benchmarks for tap-tradecloud: `make bench` (bench/run.py) writes bench/RESULTS.md."""
