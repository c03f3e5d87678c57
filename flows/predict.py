"""Predict with a model saved by train-flow, after checking its sha256.

The code: ``prefect_sklearn_dask.commands.predict`` (``--help`` for options).
"""

from prefect_sklearn_dask.commands.predict import cli

if __name__ == "__main__":  # Dask's spawned worker processes import this file too
    cli()
