"""Benchmarks: measurements side by side, results under benchmarks/results/."""
