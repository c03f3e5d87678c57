"""The engines that train on partitions where they lie: ``xgb`` (``xgboost.dask``: each
worker builds a quantile matrix of its partitions and the workers boost one model
together) and ``sgd`` (an ``SGDClassifier`` streamed through dask-ml's ``Incremental``,
one partition in memory at a time). Both take the training rows as a lazy dask frame
whose columns :mod:`.source` typed (numbers float32, text as fixed categories, the
target as fixed classes) and return a :class:`~.model.PartitionedModel`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prefect_sklearn_dask.ml.errors import ModelError
from prefect_sklearn_dask.ml.partitioned.bounded import bounded_call
from prefect_sklearn_dask.ml.partitioned.model import Features, PartitionedModel, Standardizer
from prefect_sklearn_dask.ml.partitioned.tree import fetch, tree_reduce

LABEL = "__label__"
XGB_DEFAULTS: dict[str, Any] = {
    "n_estimators": 50,
    "max_depth": 6,
    "learning_rate": 0.3,
    "max_bin": 256,
}
SGD_DEFAULTS: dict[str, Any] = {"epochs": 3, "alpha": 1e-4}
# Generous: the watchdog ends the wait at once when a worker leaves; this bounds the rest.
TRAIN_TIMEOUT = 4 * 3600.0
# How long one of xgboost's collective operations waits for a peer before it fails: how
# long a worker left alone by a dead peer stays busy (then it is restarted, bounded.drain).
COLLECTIVE_TIMEOUT = 300
# How long spreading the partitions waits for a worker when none is up (all restarting)
WORKER_WAIT_S = 60.0
# Keys of the tasks xgboost.dask submits to train (one per worker), cancelled when the
# training is abandoned.
XGB_TASKS = ("fn-",)


def with_defaults(defaults: dict[str, Any], params: dict[str, Any] | None, model: str):
    unknown = sorted(set(params or {}) - set(defaults))
    if unknown:
        raise ModelError(
            f"unknown parameter(s) {', '.join(unknown)} for {model}; "
            f"it takes {', '.join(sorted(defaults))}"
        )
    return {**defaults, **(params or {})}


def labelled(frame: pd.DataFrame, names: list[str], target: str) -> pd.DataFrame:
    """A partition's features and its class index as float32 (XGBoost's label type)."""
    out = frame[names].copy()
    out[LABEL] = frame[target].cat.codes.astype("float32")
    return out


def spread(client, train) -> Any:
    """The training partitions computed and held round-robin on all workers (every
    worker takes part in xgboost.dask training; one holding nothing would idle and one
    holding everything could run out of memory). Lost partitions are recomputed."""
    import dask.dataframe as dd
    from distributed import wait

    client.wait_for_workers(1, timeout=WORKER_WAIT_S)  # a restarting worker comes back
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    parts = train.to_delayed()
    futures = [
        client.compute(part, workers=[workers[i % len(workers)]], allow_other_workers=True)
        for i, part in enumerate(parts)
    ]
    wait(futures)
    return dd.from_delayed(futures, meta=train._meta, verify_meta=False)


def fit_xgb(
    client,
    train,
    features: Features,
    target: str,
    n_classes: int,
    seed: int,
    params: dict[str, Any] | None = None,
    timeout: float = TRAIN_TIMEOUT,
) -> PartitionedModel:
    """Boost on all workers at once (``DaskQuantileDMatrix``, hist, native categoricals)."""
    from xgboost import dask as dxgb
    from xgboost.collective import Config

    chosen = with_defaults(XGB_DEFAULTS, params, "xgb")
    booster_params = {
        "tree_method": "hist",
        "max_depth": chosen["max_depth"],
        "learning_rate": chosen["learning_rate"],
        "max_bin": chosen["max_bin"],
        "seed": seed,
        "verbosity": 0,
        **(
            {"objective": "binary:logistic"}
            if n_classes == 2
            else {"objective": "multi:softprob", "num_class": n_classes}
        ),
    }
    frame = train.map_partitions(labelled, features.names, target)

    def boost():
        held = spread(client, frame)
        dtrain = dxgb.DaskQuantileDMatrix(
            client,
            held[features.names],
            held[LABEL],
            enable_categorical=True,
            max_bin=chosen["max_bin"],
        )
        # No tracker timeout: it bounds the whole training, and when it expires the
        # tracker (on the scheduler) aborts its process. The watchdog bounds the wait.
        coll = Config(timeout=int(COLLECTIVE_TIMEOUT))
        return dxgb.train(
            client,
            booster_params,
            dtrain,
            num_boost_round=int(chosen["n_estimators"]),
            coll_cfg=coll,
        )["booster"]

    booster = bounded_call(
        client,
        boost,
        timeout,
        "xgb training",
        key_names=XGB_TASKS,
        drain_seconds=COLLECTIVE_TIMEOUT + 10,
    )
    return PartitionedModel("xgb", features, n_classes, booster, params=dict(params or {}))


def moments(frame: pd.DataFrame, numeric: list[str]) -> np.ndarray:
    """Per numeric column: non-missing count, sum and sum of squares (float64)."""
    values = frame[numeric].to_numpy(dtype=np.float64)
    present = ~np.isnan(values)
    clean = np.where(present, values, 0.0)
    return np.stack([present.sum(axis=0), clean.sum(axis=0), (clean**2).sum(axis=0)])


def _sum(parts: list[np.ndarray]) -> np.ndarray:
    return np.sum(parts, axis=0)


def fit_sgd(
    client,
    train,
    features: Features,
    target: str,
    n_classes: int,
    seed: int,
    params: dict[str, Any] | None = None,
    timeout: float = TRAIN_TIMEOUT,
) -> PartitionedModel:
    """Standardise from one pass of moments, then ``epochs`` passes of ``partial_fit``
    over the partitions (dask-ml ``Incremental``: the model travels, the data stays)."""
    import dask
    from dask_ml.wrappers import Incremental
    from sklearn.linear_model import SGDClassifier

    chosen = with_defaults(SGD_DEFAULTS, params, "sgd")
    if features.numeric:
        parts = [dask.delayed(moments)(p, features.numeric) for p in train.to_delayed()]
        count, total, squares = fetch(client, tree_reduce(_sum, parts))
        standardizer = Standardizer.from_moments(count, total, squares)
    else:
        standardizer = Standardizer(np.zeros(0), np.ones(0))
    width = len(features.numeric) + sum(len(v) for v in features.levels.values())
    meta = pd.DataFrame(np.zeros((0, width)))

    def matrix(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(standardizer.matrix(frame, features))

    X = train.map_partitions(matrix, meta=meta)
    y = train[target].map_partitions(lambda s: s.cat.codes.astype("int64"), meta=("y", "int64"))
    classifier = SGDClassifier(
        loss="log_loss", alpha=float(chosen["alpha"]), random_state=seed, average=False
    )
    incremental = Incremental(classifier, scoring=None, shuffle_blocks=True, random_state=seed)
    classes = list(range(n_classes))

    def stream():
        with client.as_current():
            incremental.fit(X, y, classes=classes)
            for _ in range(int(chosen["epochs"]) - 1):
                incremental.partial_fit(X, y, classes=classes)
        return incremental.estimator_

    fitted = bounded_call(client, stream, timeout, "sgd training", key_names=("fit-",))
    return PartitionedModel(
        "sgd", features, n_classes, fitted, standardizer=standardizer, params=dict(params or {})
    )


ENGINES = {"xgb": fit_xgb, "sgd": fit_sgd}
