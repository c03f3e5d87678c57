"""Fit one classifier on the shared split and score it: the unit of work of a task."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline

from prefect_sklearn_dask.ml.data import DatasetRef, Split, load_split
from prefect_sklearn_dask.ml.errors import DataError
from prefect_sklearn_dask.ml.preprocess import make_model_pipeline
from prefect_sklearn_dask.ml.registry import build_estimator, get_spec

METRICS = ("f1_macro", "accuracy", "roc_auc")
# Diagnostics kept for the comparison chart, not the table: small and JSON-able.
DIAGNOSTICS = ("confusion", "roc_curves")
ROC_POINTS = 101  # per curve: enough to draw it, small enough for a task result


@dataclass
class TrainReport:
    """Scores of one fitted model; ``estimator`` is the fitted pipeline (not tabulated).

    ``started_at``/``finished_at`` (epoch seconds, the executing process's clock) give
    the run's timeline: which fits overlapped, and how busy the workers were.
    ``confusion`` (rows: true class, columns: predicted, classes in the split's order)
    and ``roc_curves`` (class index -> ``fpr``/``tpr``/``auc``, one-vs-rest; only the
    positive class when binary) describe the held-out predictions for the chart.
    ``search`` (with ``--search``) holds the search's best CV score, fits and seconds.
    ``peak_worker_mb``: the highest Dask worker RSS while the model trained and was scored
    (partitioned data, whose work spans the cluster).
    """

    model: str
    params: dict[str, Any]
    accuracy: float
    f1_macro: float
    roc_auc: float | None
    fit_seconds: float
    predict_seconds: float
    n_train: int
    n_test: int
    cv_folds: int = 0
    cv_f1_macro_mean: float | None = None
    cv_f1_macro_std: float | None = None
    cv_f1_macro_scores: list[float] | None = None
    confusion: list[list[int]] | None = None
    roc_curves: dict[str, dict[str, Any]] | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    search: dict[str, Any] | None = None
    peak_worker_mb: float | None = None
    estimator: Pipeline | None = field(default=None, repr=False, compare=False)

    def row(self) -> dict[str, Any]:
        """The table row: every score, no estimator, no curves."""
        data = asdict(self)
        for name in ("estimator", *DIAGNOSTICS):
            data.pop(name)
        return data

    def diagnostics(self) -> dict[str, Any]:
        """The held-out confusion matrix and ROC curves (JSON-able)."""
        return {name: getattr(self, name) for name in DIAGNOSTICS}


def class_scores(estimator: Pipeline, X, n_classes: int) -> np.ndarray | None:
    """Probabilities (the positive class's when binary) or binary decision scores."""
    if hasattr(estimator, "predict_proba"):
        scores = estimator.predict_proba(X)
        return scores[:, 1] if n_classes == 2 else scores
    if hasattr(estimator, "decision_function") and n_classes == 2:
        return estimator.decision_function(X)
    return None


def roc_auc(estimator: Pipeline, X, y: np.ndarray, n_classes: int) -> float | None:
    """ROC AUC from probabilities (or binary decision scores); None where undefined."""
    if len(np.unique(y)) < n_classes:
        return None
    scores = class_scores(estimator, X, n_classes)
    if scores is None:
        return None
    return float(roc_auc_score(y, scores, multi_class="ovr", labels=list(range(n_classes))))


def roc_curves(
    estimator: Pipeline, X, y: np.ndarray, n_classes: int, points: int = ROC_POINTS
) -> dict[str, dict[str, Any]] | None:
    """One-vs-rest ROC curve per class present in ``y`` (binary: the positive class),
    thinned to at most ``points`` points; None when the model gives no scores."""
    scores = class_scores(estimator, X, n_classes)
    if scores is None:
        return None
    columns = {1: scores} if n_classes == 2 else dict(enumerate(scores.T))
    curves = {}
    for label, column in columns.items():
        truth = y == label
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, column)
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).round().astype(int))
        curves[str(label)] = {
            "fpr": [round(float(v), 4) for v in fpr[keep]],
            "tpr": [round(float(v), 4) for v in tpr[keep]],
            "auc": float(roc_auc_score(truth, column)),
        }
    return curves or None


def cross_validate_f1(pipeline: Pipeline, split: Split, folds: int, seed: int) -> list[float]:
    """Macro F1 of each of stratified k folds of the training set."""
    smallest = int(np.bincount(split.y_train).min())
    if folds > smallest:
        raise DataError(
            f"--cv {folds} needs at least {folds} training rows per class; the smallest "
            f"class has {smallest}; lower --cv"
        )
    scores = cross_validate(
        pipeline,
        split.X_train,
        split.y_train,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring="f1_macro",
        n_jobs=1,
    )["test_score"]
    return [float(score) for score in scores]


def train_and_evaluate(
    model: str,
    data: DatasetRef,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    cv: int = 0,
) -> TrainReport:
    """Fit ``model`` on the run's split and score it on the held-out test set.

    Pure and deterministic for a given seed: the same numbers come back whichever
    runner, thread or worker process executes it.
    """
    started_at = time.time()
    split = load_split(data)
    spec = get_spec(model)
    pipeline = make_model_pipeline(
        split.X_train, build_estimator(model, seed, params), scale=spec.scale
    )
    cv_scores = cross_validate_f1(pipeline, split, cv, seed) if cv > 1 else None

    started = time.perf_counter()
    pipeline.fit(split.X_train, split.y_train)
    fitted = time.perf_counter()
    predicted = pipeline.predict(split.X_test)
    predict_seconds = time.perf_counter() - fitted
    n_classes = len(split.classes)

    return TrainReport(
        model=model,
        params=dict(params or {}),
        accuracy=float(accuracy_score(split.y_test, predicted)),
        f1_macro=float(f1_score(split.y_test, predicted, average="macro")),
        roc_auc=roc_auc(pipeline, split.X_test, split.y_test, n_classes),
        fit_seconds=fitted - started,
        predict_seconds=predict_seconds,
        n_train=len(split.y_train),
        n_test=len(split.y_test),
        cv_folds=cv if cv > 1 else 0,
        cv_f1_macro_mean=float(np.mean(cv_scores)) if cv_scores else None,
        cv_f1_macro_std=float(np.std(cv_scores)) if cv_scores else None,
        cv_f1_macro_scores=cv_scores,
        confusion=confusion_matrix(split.y_test, predicted, labels=list(range(n_classes))).tolist(),
        roc_curves=roc_curves(pipeline, split.X_test, split.y_test, n_classes),
        started_at=started_at,
        finished_at=time.time(),
        estimator=pipeline,
    )


def rank(reports: list[TrainReport], metric: str = "f1_macro") -> list[TrainReport]:
    """Best first by ``metric`` (missing scores last), ties broken by fit time."""
    if metric not in METRICS:
        raise DataError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    return sorted(
        reports,
        key=lambda r: (getattr(r, metric) is None, -(getattr(r, metric) or 0.0), r.fit_seconds),
    )
