"""Benchmarks and the offline competitions they run on."""
