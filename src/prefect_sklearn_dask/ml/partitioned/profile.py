"""One pass over the data on the cluster: what metadata cannot say, in a few kilobytes.

Each partition is reduced on its worker to row counts, the target's class counts and
missing values, each text column's levels and each column's non-missing count; the
per-partition summaries are merged in a tree on the workers. The caller gets the merged
summary only, and refuses the data (one class, missing targets naming their files,
all-empty columns, id-like text columns) before anything trains.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prefect_sklearn_dask.ml.errors import DataError
from prefect_sklearn_dask.ml.partitioned.source import CATEGORY, PartitionedSource
from prefect_sklearn_dask.ml.partitioned.tree import fetch, tree_reduce

# More distinct values than this in a text column (or the target) is an id or free
# text, not a category: refused, so the levels stay small enough to travel.
MAX_LEVELS = 1000


@dataclass
class Summary:
    """The mergeable summary of some partitions (picklable, small)."""

    rows: dict[int, int] = field(default_factory=dict)
    classes: Counter = field(default_factory=Counter)
    missing_target: dict[str, int] = field(default_factory=dict)
    levels: dict[str, set] = field(default_factory=dict)
    non_null: Counter = field(default_factory=Counter)

    def merge(self, other: Summary) -> Summary:
        self.rows.update(other.rows)
        self.classes.update(other.classes)
        for path, count in other.missing_target.items():
            self.missing_target[path] = self.missing_target.get(path, 0) + count
        for name, values in other.levels.items():
            mine = self.levels.setdefault(name, set())
            if len(mine) <= MAX_LEVELS:
                mine |= values
        self.non_null.update(other.non_null)
        return self


def summarize(frame: pd.DataFrame, index: int, path: str, target: str, text: list[str]) -> Summary:
    """One partition's summary, on the worker that read it."""
    y = frame[target]
    missing = int(y.isna().sum())
    counts = y.dropna().value_counts()
    return Summary(
        rows={index: len(frame)},
        classes=Counter({_plain(k): int(v) for k, v in counts.items()}),
        missing_target={path: missing} if missing else {},
        levels={c: set(frame[c].dropna().unique()[: MAX_LEVELS + 1].tolist()) for c in text},
        non_null=Counter({c: int(n) for c, n in frame.notna().sum().items()}),
    )


def merge_all(summaries: list[Summary]) -> Summary:
    merged = Summary()
    for summary in summaries:
        merged.merge(summary)
    return merged


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class DataProfile:
    """What the pass found: rows per piece, the classes (sorted, as LabelEncoder orders
    them) and their counts, and each text column's levels (sorted)."""

    rows: tuple[int, ...]
    classes: tuple[Any, ...]
    class_counts: tuple[int, ...]
    levels: tuple[tuple[str, tuple[Any, ...]], ...]

    @property
    def n_rows(self) -> int:
        return int(sum(self.rows))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def dtypes(self, target: str) -> dict[str, pd.CategoricalDtype]:
        """Fixed categories for the target and every text column: the same codes in
        every partition, whichever levels it happens to hold."""
        dtypes = {name: pd.CategoricalDtype(list(values)) for name, values in self.levels}
        dtypes[target] = pd.CategoricalDtype(list(self.classes))
        return dtypes


def profile_source(client, source: PartitionedSource) -> DataProfile:
    """Run the pass on ``client``'s cluster and check its findings."""
    import dask

    text = [name for name, kind in source.kinds if kind == CATEGORY and name != source.target]
    parts = source.frame().to_delayed()
    summaries = [
        dask.delayed(summarize)(part, i, piece.path, source.target, text)
        for i, (part, piece) in enumerate(zip(parts, source.pieces, strict=True))
    ]
    merged = fetch(client, tree_reduce(merge_all, summaries))
    return check(merged, source, text)


def check(merged: Summary, source: PartitionedSource, text: list[str]) -> DataProfile:
    """The in-memory path's checks (ml/data.py ``validate``), on the merged summary."""
    name = source.dataset
    target = source.target
    n_rows = sum(merged.rows.values())
    if n_rows == 0:
        raise DataError(f"dataset {name!r} has no rows")
    if merged.missing_target:
        path, count = next(iter(sorted(merged.missing_target.items())))
        total = sum(merged.missing_target.values())
        raise DataError(
            f"target column {target!r} has {total} missing value(s), {count} in {path!r}; "
            "drop or fill those rows"
        )
    counts = merged.classes
    if len(counts) < 2:
        only = next(iter(counts), None)
        raise DataError(
            f"target column {target!r} has one class ({only!r}) in {name!r}; "
            "classification needs at least two"
        )
    if len(counts) > MAX_LEVELS:
        raise DataError(
            f"target column {target!r} has more than {MAX_LEVELS} distinct values; "
            "classification needs classes (is it a regression target?)"
        )
    rare = min(counts, key=lambda k: counts[k])
    if counts[rare] < 2:
        raise DataError(
            f"class {rare!r} of {target!r} has only one row; "
            "each class needs at least two rows to be split into train and test"
        )
    empty = [c for c in source.features if merged.non_null.get(c, 0) == 0]
    if empty:
        raise DataError(f"column(s) {', '.join(empty)} are entirely empty; drop them")
    wide = [c for c in text if len(merged.levels.get(c, ())) > MAX_LEVELS]
    if wide:
        raise DataError(
            f"text column(s) {', '.join(wide)} have more than {MAX_LEVELS} distinct values "
            "(an id or free text?); drop them or turn them into numbers"
        )
    classes = sorted(counts, key=_order)
    return DataProfile(
        rows=tuple(merged.rows[i] for i in range(len(source.pieces))),
        classes=tuple(classes),
        class_counts=tuple(counts[c] for c in classes),
        levels=tuple((c, tuple(sorted(merged.levels.get(c, ()), key=_order))) for c in text),
    )


def _order(value: Any) -> tuple[str, Any]:
    """Sort mixed values the way a reader expects: numbers by value, then text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("0", value)
    return ("1", str(value))
