"""The saved model of a partitioned run: raw rows in, class probabilities out.

The preprocessing travels inside the model, so ``flows/predict.py`` (one file, or a
directory predicted partition by partition) hands it raw rows: the feature columns are
picked and typed as in training, text columns get the training run's fixed levels (an
unseen level is a missing value), and for ``sgd`` numbers are standardised with the
training rows' means and deviations, missing numbers become the mean, and text columns
are one-hot encoded. ``predict`` returns class indices, as the in-memory pipelines do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from prefect_sklearn_dask.ml.errors import DataError


@dataclass
class Features:
    """The training run's columns: numbers, and text columns with their levels."""

    numeric: list[str]
    levels: dict[str, list[Any]]

    @property
    def names(self) -> list[str]:
        return self.numeric + list(self.levels)

    def frame(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Numbers as float32 (NaN stays: XGBoost treats it as missing) and text as
        categories with the training levels: what XGBoost's native categoricals need."""
        missing = [c for c in self.names if c not in raw.columns]
        if missing:
            raise DataError(
                f"the data lacks column(s) the model was trained on: {', '.join(missing[:10])}"
            )
        out = {c: pd.to_numeric(raw[c], errors="coerce").astype("float32") for c in self.numeric}
        for name, levels in self.levels.items():
            column = raw[name]
            if isinstance(column.dtype, pd.CategoricalDtype):
                column = column.astype(object)
            values = column.where(column.notna(), None)
            out[name] = pd.Categorical(values, categories=levels)
        return pd.DataFrame(out, index=raw.index)


@dataclass
class Standardizer:
    """``sgd``'s input: standardised numbers (missing -> 0, the mean) + one-hot text."""

    means: np.ndarray
    scales: np.ndarray

    def matrix(self, frame: pd.DataFrame, features: Features) -> np.ndarray:
        numbers = frame[features.numeric].to_numpy(dtype=np.float64)
        numbers = np.nan_to_num((numbers - self.means) / self.scales, nan=0.0)
        blocks = [numbers]
        for name, levels in features.levels.items():
            codes = frame[name].cat.codes.to_numpy()
            one_hot = np.zeros((len(frame), len(levels)))
            seen = codes >= 0
            one_hot[np.flatnonzero(seen), codes[seen]] = 1.0
            blocks.append(one_hot)
        return np.hstack(blocks)

    @classmethod
    def from_moments(cls, count: np.ndarray, total: np.ndarray, squares: np.ndarray):
        """From per-column non-missing counts, sums and sums of squares (one pass)."""
        safe = np.maximum(count, 1)
        means = total / safe
        variances = np.maximum(squares / safe - means**2, 0.0)
        scales = np.sqrt(variances)
        return cls(means, np.where(scales > 0, scales, 1.0))


@dataclass
class PartitionedModel:
    """A fitted ``xgb`` (an XGBoost ``Booster``) or ``sgd`` (``SGDClassifier`` +
    :class:`Standardizer`) model with its :class:`Features`; picklable, sklearn-like."""

    engine: str
    features: Features
    n_classes: int
    estimator: Any
    standardizer: Standardizer | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def predict_proba(self, raw: pd.DataFrame) -> np.ndarray:
        frame = self.features.frame(raw)
        if self.engine == "xgb":
            scores = np.asarray(self.estimator.inplace_predict(frame))
            if scores.ndim == 1:
                scores = np.column_stack([1.0 - scores, scores])
            return scores
        return self.estimator.predict_proba(self.standardizer.matrix(frame, self.features))

    def predict(self, raw: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(raw).argmax(axis=1)
