"""A long-lived local Dask cluster on 127.0.0.1 that flow runs reuse.

The code: ``prefect_sklearn_dask.cluster.local`` (``--help`` for options).
"""

from prefect_sklearn_dask.cluster.local import cli

if __name__ == "__main__":  # Dask's spawned worker processes import this file too
    cli()
