"""Start, inspect or stop the project's persistent local Prefect server.

The code: ``prefect_sklearn_dask.server.process`` (``--help`` for options).
"""

from prefect_sklearn_dask.server.process import cli

if __name__ == "__main__":  # Dask's spawned worker processes import this file too
    cli()
