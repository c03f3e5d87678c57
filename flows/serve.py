"""Serve train-flow as deployment train-flow/TrainClassifiers, scheduled or on demand.

The code: ``prefect_sklearn_dask.commands.serve`` (``--help`` for options).
"""

from prefect_sklearn_dask.commands.serve import cli

if __name__ == "__main__":  # Dask's spawned worker processes import this file too
    cli()
