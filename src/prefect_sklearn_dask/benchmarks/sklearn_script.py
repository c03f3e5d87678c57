"""The scikit-learn anchor of the whole-command rows: what a user would write instead.

One ``GridSearchCV(n_jobs=W)`` (loky processes) per model over the same grids, folds,
preprocessing and metric as ``flows/train.py --search grid``, refit on the training
split and scored on the held-out split, as the project's command does. Run as a whole
process (``python -m prefect_sklearn_dask.benchmarks.sklearn_script``), timed from start
to exit by :mod:`.whole`. It imports scikit-learn and the project's data and model
definitions only (no Prefect, no Dask): an import it would not need would slow the anchor.

Prints one JSON object: each model's best CV score and parameters, and the test score.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def model_searches(source: str, space: dict[str, Any], cv: int, seed: int, metric: str, jobs: int):
    """``(model, GridSearchCV)`` per model, and the split they fit on."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline

    from prefect_sklearn_dask.ml.data import load_split, prepare
    from prefect_sklearn_dask.ml.preprocess import make_preprocessor
    from prefect_sklearn_dask.ml.registry import build_estimator, get_spec
    from prefect_sklearn_dask.ml.search_space import parse_space

    split = load_split(prepare(source, None, 0.25, seed))
    folds = StratifiedKFold(cv, shuffle=True, random_state=seed)
    searches = []
    for model, grid in parse_space(space, "grid").items():
        pipeline = Pipeline(
            [
                ("preprocess", make_preprocessor(split.X_train, get_spec(model).scale)),
                ("classifier", build_estimator(model, seed)),
            ]
        )
        param_grid = {f"classifier__{k}": list(v) for k, v in grid.items()}
        searches.append(
            (model, GridSearchCV(pipeline, param_grid, scoring=metric, cv=folds, n_jobs=jobs))
        )
    return searches, split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--space", required=True, help="the search space as JSON")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metric", default="f1_macro")
    parser.add_argument("--n-jobs", type=int, required=True)
    args = parser.parse_args(argv)
    searches, split = model_searches(
        args.dataset, json.loads(args.space), args.cv, args.seed, args.metric, args.n_jobs
    )
    out = {}
    for model, search in searches:
        search.fit(split.X_train, split.y_train)
        out[model] = {
            "cv_mean": float(search.best_score_),
            "params": {k.removeprefix("classifier__"): v for k, v in search.best_params_.items()},
            "test": float(search.score(split.X_test, split.y_test)),
            "fits": len(search.cv_results_["params"]) * args.cv,
        }
    json.dump(out, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
