"""Prefect on Dask: a fast drop-in task runner, runner building, worker set-up, Dask faults."""
