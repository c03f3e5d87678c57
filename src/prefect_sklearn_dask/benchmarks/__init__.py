"""Benchmarks: every runner side by side on the same workloads (``benchmarks/compare.py``)."""
