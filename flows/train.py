"""Train and compare classifiers with Prefect, on threads or a Dask cluster.

The code: ``prefect_sklearn_dask.commands.train`` (``--help`` for options).
"""

from prefect_sklearn_dask.commands.train import cli

if __name__ == "__main__":  # Dask's spawned worker processes import this file too
    cli()
