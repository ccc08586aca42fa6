"""Benchmarks for service-actors (run `python bench/bench_ask.py`)."""
