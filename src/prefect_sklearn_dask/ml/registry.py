"""The classifiers the flow can train, each with sane defaults and a small grid.

Every estimator is single-threaded (``n_jobs=1``): parallelism comes from the task
runner, and nested parallelism inside Dask workers oversubscribes the cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from scipy.stats import loguniform, randint
from sklearn.base import ClassifierMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from prefect_sklearn_dask.ml.errors import ModelError


@dataclass(frozen=True)
class ModelSpec:
    """How to build one classifier.

    ``cost`` is the fit-and-score time in seconds on the default dataset (synthetic
    5000x30, one thread), measured: the runner submits expensive fits first so the
    slowest task does not start last and stretch the wall time. Only the order matters.
    """

    name: str
    title: str
    factory: Callable[[int], ClassifierMixin]
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    scale: bool = False
    cost: float = 1.0
    distributions: Mapping[str, Any] = field(default_factory=dict)


def _seeded(cls: type, **defaults: Any) -> Callable[[int], ClassifierMixin]:
    return lambda seed: cls(random_state=seed, **defaults)


def _unseeded(cls: type, **defaults: Any) -> Callable[[int], ClassifierMixin]:
    return lambda seed: cls(**defaults)


def _xgboost(seed: int) -> ClassifierMixin:
    """XGBoost's scikit-learn classifier with the partitioned engine's defaults
    (``ml/partitioned/engines.py``), imported only when built."""
    from xgboost import XGBClassifier

    return XGBClassifier(
        n_estimators=50,
        max_depth=6,
        learning_rate=0.3,
        tree_method="hist",
        n_jobs=1,
        random_state=seed,
    )


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "logreg",
            "Logistic regression",
            _seeded(LogisticRegression, max_iter=2000),
            {"C": (0.1, 1.0, 10.0)},
            scale=True,
            cost=0.03,
            distributions={"C": loguniform(1e-3, 1e2)},
        ),
        ModelSpec(
            "rf",
            "Random forest",
            _seeded(RandomForestClassifier, n_estimators=100, n_jobs=1),
            {"n_estimators": (100, 300), "max_depth": (None, 10)},
            cost=1.1,
            distributions={
                "n_estimators": randint(50, 300),
                "max_depth": [None, 5, 10, 20],
                "max_features": ["sqrt", 0.5],
            },
        ),
        ModelSpec(
            "et",
            "Extra trees",
            _seeded(ExtraTreesClassifier, n_estimators=100, n_jobs=1),
            {"n_estimators": (100, 300), "max_features": ("sqrt", 0.5)},
            cost=0.5,
            distributions={"n_estimators": randint(50, 300), "max_features": ["sqrt", 0.5, 1.0]},
        ),
        ModelSpec(
            "hgb",
            "Histogram gradient boosting",
            _seeded(HistGradientBoostingClassifier),
            {"learning_rate": (0.05, 0.1, 0.2), "max_leaf_nodes": (15, 31)},
            cost=0.4,
            distributions={
                "learning_rate": loguniform(0.01, 0.3),
                "max_leaf_nodes": randint(8, 64),
                "l2_regularization": loguniform(1e-4, 1.0),
            },
        ),
        ModelSpec(
            "gb",
            "Gradient boosting",
            _seeded(GradientBoostingClassifier),
            {"n_estimators": (100, 200), "learning_rate": (0.05, 0.1)},
            cost=2.6,
            distributions={
                "n_estimators": randint(50, 250),
                "learning_rate": loguniform(0.01, 0.3),
                "max_depth": randint(2, 5),
            },
        ),
        ModelSpec(
            "svc",
            "Support vector machine (RBF)",
            _seeded(SVC),
            {"C": (0.5, 1.0, 5.0), "gamma": ("scale", 0.01)},
            scale=True,
            cost=0.4,
            distributions={"C": loguniform(1e-2, 1e2), "gamma": loguniform(1e-4, 1e-1)},
        ),
        ModelSpec(
            "knn",
            "k-nearest neighbours",
            _unseeded(KNeighborsClassifier, n_neighbors=5, n_jobs=1),
            {"n_neighbors": (3, 5, 11), "weights": ("uniform", "distance")},
            scale=True,
            cost=0.07,
            distributions={"n_neighbors": randint(1, 31), "weights": ["uniform", "distance"]},
        ),
        ModelSpec(
            "nb",
            "Gaussian naive Bayes",
            _unseeded(GaussianNB),
            {"var_smoothing": (1e-9, 1e-7)},
            cost=0.02,
            distributions={"var_smoothing": loguniform(1e-11, 1e-5)},
        ),
        ModelSpec(
            "mlp",
            "Multi-layer perceptron",
            _seeded(MLPClassifier, hidden_layer_sizes=(64,), max_iter=500),
            {"hidden_layer_sizes": ((32,), (64,), (64, 32)), "alpha": (1e-4, 1e-2)},
            scale=True,
            cost=2.4,
            distributions={
                "hidden_layer_sizes": [(32,), (64,), (64, 32)],
                "alpha": loguniform(1e-5, 1e-1),
            },
        ),
        ModelSpec(
            "tree",
            "Decision tree",
            _seeded(DecisionTreeClassifier),
            {"max_depth": (None, 5, 10)},
            cost=0.1,
            distributions={"max_depth": [None, 3, 5, 10, 20], "min_samples_leaf": randint(1, 20)},
        ),
        ModelSpec(
            "lda",
            "Linear discriminant analysis",
            _unseeded(LinearDiscriminantAnalysis),
            {"solver": ("svd", "lsqr")},
            scale=True,
            cost=0.03,
            distributions={"solver": ["svd", "lsqr"], "tol": loguniform(1e-6, 1e-2)},
        ),
        # Both also train on partitioned data (ml/partitioned/engines.py): xgboost.dask and
        # SGDClassifier streamed through dask-ml's Incremental.
        ModelSpec(
            "xgb",
            "XGBoost (hist)",
            _xgboost,
            {"max_depth": (3, 6), "learning_rate": (0.1, 0.3)},
            cost=0.5,
            distributions={
                "max_depth": randint(2, 10),
                "learning_rate": loguniform(0.01, 0.5),
                "n_estimators": randint(20, 200),
            },
        ),
        ModelSpec(
            "sgd",
            "Linear model by SGD (log loss)",
            _seeded(SGDClassifier, loss="log_loss"),
            {"alpha": (1e-5, 1e-4, 1e-3)},
            scale=True,
            cost=0.03,
            distributions={"alpha": loguniform(1e-6, 1e-2)},
        ),
    )
}

DEFAULT_MODELS: tuple[str, ...] = ("logreg", "rf", "et", "hgb", "svc", "knn", "nb", "mlp")


def get_spec(name: str) -> ModelSpec:
    """Look a model up by name, with an error that lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(f"unknown model {name!r}; choose from: {known}") from None


def parse_models(names: str | Iterable[str] | None) -> list[str]:
    """Turn ``"rf,logreg"`` or a list into validated, de-duplicated model names."""
    if names is None:
        return list(DEFAULT_MODELS)
    if isinstance(names, str):
        names = names.split(",")
    cleaned = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    if not cleaned:
        raise ModelError("no models given; pass e.g. --models rf,logreg,hgb")
    for name in cleaned:
        get_spec(name)
    return cleaned


def build_estimator(name: str, seed: int, params: Mapping[str, Any] | None = None):
    """A fresh, unfitted classifier with the spec's defaults and ``params`` applied."""
    estimator = get_spec(name).factory(seed)
    if params:
        valid = estimator.get_params()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ModelError(f"model {name!r} has no hyper-parameter(s) {', '.join(unknown)}")
        estimator.set_params(**params)
    return estimator


def grid_points(name: str) -> list[dict[str, Any]]:
    """Every hyper-parameter combination of a model's grid, for fan-out as tasks."""
    grid = get_spec(name).grid
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in product(*(grid[k] for k in keys))]


def by_cost(names: Iterable[str]) -> list[str]:
    """Most expensive first, so the longest fit is not the last one started."""
    return sorted(names, key=lambda n: -get_spec(n).cost)
