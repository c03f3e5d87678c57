"""Dask clusters the flow runs on: local ones it starts, remote ones it connects to."""
