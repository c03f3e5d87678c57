"""Held-out scores as reductions: each worker reduces its test rows to a confusion matrix
and score histograms, the sums are merged on the workers, and only those few kilobytes
come back.

From them: accuracy, macro F1 and the confusion matrix exactly as scikit-learn computes
them on the same predictions; ROC AUC (one-vs-rest, macro) and ROC curves from
:data:`BINS`-bin histograms of each class's score, exact but for pairs of rows whose
scores share a bin (counted as ties: at most ~1/BINS of AUC on smooth scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prefect_sklearn_dask.ml.evaluate import ROC_POINTS

BINS = 4096


@dataclass
class ScoreStats:
    """Mergeable held-out statistics: ``confusion[true, predicted]`` and, per scored
    class (binary: the positive one), histograms of its score over rows of that class
    (``positive``) and of the others (``negative``)."""

    confusion: np.ndarray
    positive: np.ndarray
    negative: np.ndarray

    def __add__(self, other: ScoreStats) -> ScoreStats:
        return ScoreStats(
            self.confusion + other.confusion,
            self.positive + other.positive,
            self.negative + other.negative,
        )

    @property
    def n_rows(self) -> int:
        return int(self.confusion.sum())


def scored_classes(n_classes: int) -> list[int]:
    return [1] if n_classes == 2 else list(range(n_classes))


def partition_stats(y: np.ndarray, proba: np.ndarray, n_classes: int) -> ScoreStats:
    """One partition's statistics from its true class indices and class probabilities."""
    y = np.asarray(y, dtype=np.int64)
    predicted = proba.argmax(axis=1) if len(y) else np.zeros(0, dtype=np.int64)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    classes = scored_classes(n_classes)
    positive = np.zeros((len(classes), BINS), dtype=np.int64)
    negative = np.zeros((len(classes), BINS), dtype=np.int64)
    for row, label in enumerate(classes):
        bins = np.clip((proba[:, label] * BINS).astype(np.int64), 0, BINS - 1)
        truth = y == label
        positive[row] = np.bincount(bins[truth], minlength=BINS)
        negative[row] = np.bincount(bins[~truth], minlength=BINS)
    return ScoreStats(confusion, positive, negative)


def total(stats: list[ScoreStats]) -> ScoreStats:
    result = stats[0]
    for more in stats[1:]:
        result = result + more
    return result


def accuracy(confusion: np.ndarray) -> float:
    return float(np.trace(confusion) / confusion.sum())


def f1_macro(confusion: np.ndarray) -> float:
    """scikit-learn's ``f1_score(average="macro")``: over the classes that occur as
    truth or prediction, 2TP / (2TP + FP + FN), 0 where a class was never right."""
    tp = np.diag(confusion).astype(np.float64)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    denominator = 2 * tp + fp + fn
    scores = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(scores[present].mean())


def binned_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties (same bin) counted half."""
    below = np.cumsum(negative) - negative
    pairs = positive.sum() * negative.sum()
    return float((positive * (below + 0.5 * negative)).sum() / pairs)


def roc_auc(stats: ScoreStats, n_classes: int) -> float | None:
    """Macro one-vs-rest AUC; None when a class is missing from the test rows (as the
    in-memory path: ``ml/evaluate.py`` ``roc_auc``)."""
    if (stats.confusion.sum(axis=1) == 0).any():
        return None
    aucs = [binned_auc(p, n) for p, n in zip(stats.positive, stats.negative, strict=True)]
    return float(np.mean(aucs))


def roc_curves(
    stats: ScoreStats, n_classes: int, points: int = ROC_POINTS
) -> dict[str, dict[str, Any]] | None:
    """One ROC curve per scored class with both outcomes present, from the histograms
    (thresholds at the bin edges), thinned to at most ``points`` points."""
    curves = {}
    for label, p, n in zip(scored_classes(n_classes), stats.positive, stats.negative, strict=True):
        if not p.sum() or not n.sum():
            continue
        tpr = np.concatenate([[0.0], np.cumsum(p[::-1]) / p.sum()])
        fpr = np.concatenate([[0.0], np.cumsum(n[::-1]) / n.sum()])
        steps = np.concatenate([[0], np.flatnonzero((p + n)[::-1]) + 1])  # occupied bins
        keep = steps[
            np.unique(np.linspace(0, len(steps) - 1, min(points, len(steps))).round().astype(int))
        ]
        curves[str(label)] = {
            "fpr": [round(float(v), 4) for v in fpr[keep]],
            "tpr": [round(float(v), 4) for v in tpr[keep]],
            "auc": binned_auc(p, n),
        }
    return curves or None


def finish(stats: ScoreStats, n_classes: int) -> dict[str, Any]:
    """The report's scores and diagnostics from the merged statistics."""
    return {
        "accuracy": accuracy(stats.confusion),
        "f1_macro": f1_macro(stats.confusion),
        "roc_auc": roc_auc(stats, n_classes),
        "confusion": stats.confusion.tolist(),
        "roc_curves": roc_curves(stats, n_classes),
        "n_test": stats.n_rows,
    }
