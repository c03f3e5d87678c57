"""Pure scikit-learn work: model registry, datasets, fit and evaluate.

Nothing here imports Prefect or Dask, so every function is cheap to test and to
ship to a Dask worker; the other subpackages are thin orchestration layers on top.
"""
