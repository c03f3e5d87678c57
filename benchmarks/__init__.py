"""Benchmarks: every runner side by side on the same workloads (see compare.py)."""
