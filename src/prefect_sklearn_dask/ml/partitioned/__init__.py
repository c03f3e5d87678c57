"""Data bigger than one machine: partitioned Parquet/CSV trained, scored and predicted on Dask.

The data never comes to the caller's process. The caller reads file metadata only; the
workers read the partitions, and only small results (counts, metrics, the fitted model)
come back::

    source = open_source("data/*.parquet", target="label")         # metadata, no rows
    profile = profile_source(client, source)                          # one pass on the cluster
    report = train_and_score(client, source, profile, "xgb", seed=0, test_size=0.25)
    predict_to_parquet(client, report.estimator, source, "out/")      # partition by partition

One job per module: :mod:`.source` (files, schema, reading a partition), :mod:`.profile`
(classes, categories, row counts), :mod:`.split` (held-out rows by row hash),
:mod:`.model` (preprocessing inside the saved model), :mod:`.engines` (xgboost.dask and
dask-ml ``Incremental``), :mod:`.metrics` (scores as reductions), :mod:`.train`
(one model: fit and score), :mod:`.predict` (Parquet out).
"""
