"""The search core against sklearn's own search classes on the same data, folds and seed.

No Prefect here: :func:`run_search` with fits executed in-process (a loop, or the
thread fan-out) must pick what ``GridSearchCV`` / ``RandomizedSearchCV`` /
``HalvingRandomSearchCV`` pick and report the same mean CV scores.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
    StratifiedKFold,
)

from prefect_sklearn_dask.bridge.fanout import fan_out
from prefect_sklearn_dask.flow import fit_cache
from prefect_sklearn_dask.ml.data import load_split, prepare
from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.ml.preprocess import make_model_pipeline
from prefect_sklearn_dask.ml.registry import build_estimator, get_spec
from prefect_sklearn_dask.ml.search import (
    FitJob,
    Fold,
    check_options,
    fit_one,
    halving_plan,
    plan_search,
    run_search,
)
from prefect_sklearn_dask.ml.search_space import parse_space, space_for

SEED, CV = 0, 3


@pytest.fixture(scope="module")
def ref():
    return prepare("breast_cancer", None, 0.25, SEED)


def sequential(ref):
    return lambda jobs: [fit_one(ref, job) for job in jobs]


def threaded(ref):
    return lambda jobs: fan_out(fit_one, [(ref, j) for j in jobs], local_jobs=2)


def sklearn_search(ref, model: str, cls, space, **kwargs):
    split = load_split(ref)
    pipeline = make_model_pipeline(
        split.X_train, build_estimator(model, SEED), scale=get_spec(model).scale
    )
    prefixed = {f"classifier__{k}": v for k, v in space.items()}
    folds = StratifiedKFold(CV, shuffle=True, random_state=SEED)
    search = cls(pipeline, prefixed, scoring="f1_macro", cv=folds, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return search.fit(split.X_train, split.y_train)


def ours(ref, model, kind, space, execute, n_iter=10):
    plan = plan_search(model, ref, kind, space, n_iter=n_iter, cv=CV, seed=SEED, metric="f1_macro")
    return plan, run_search(plan, execute)


def assert_same(result, search):
    best = {f"classifier__{k}": v for k, v in result.best["params"].items()}
    assert best == search.best_params_
    means = np.array([r["mean_test_score"] for r in result.rows])
    np.testing.assert_allclose(means, search.cv_results_["mean_test_score"], rtol=0, atol=1e-9)
    assert [r["rank_test_score"] for r in result.rows] == list(
        search.cv_results_["rank_test_score"]
    )
    assert result.best["mean_test_score"] == pytest.approx(search.best_score_, abs=1e-9)


def test_grid_matches_gridsearchcv(ref):
    space = space_for("svc", "grid")
    _, result = ours(ref, "svc", "grid", space, sequential(ref))
    assert result.n_fits == 6 * CV
    search = sklearn_search(ref, "svc", GridSearchCV, {k: list(v) for k, v in space.items()})
    assert_same(result, search)


def test_random_matches_randomizedsearchcv_on_threads(ref):
    space = space_for("knn", "random")
    _, result = ours(ref, "knn", "random", space, threaded(ref), n_iter=8)
    search = sklearn_search(ref, "knn", RandomizedSearchCV, space, n_iter=8, random_state=SEED)
    assert_same(result, search)


def test_halving_matches_halvingrandomsearchcv(ref):
    """Same rounds (candidates, rows per round), same survivors, same winner."""
    space = space_for("logreg", "halving")
    plan, result = ours(ref, "logreg", "halving", space, sequential(ref), n_iter=12)
    search = sklearn_search(
        ref,
        "logreg",
        HalvingRandomSearchCV,
        space,
        n_candidates=12,
        min_resources="exhaust",
        factor=3,
        random_state=SEED,
    )
    assert [r.n_candidates for r in plan.rounds] == search.n_candidates_
    assert [r.n_resources for r in plan.rounds] == search.n_resources_
    assert [r["iter"] for r in result.rows] == list(search.cv_results_["iter"])
    assert_same(result, search)
    assert result.n_fits == sum(search.n_candidates_) * CV < 12 * CV * len(plan.rounds)


@pytest.mark.parametrize(
    ("candidates", "n_samples", "n_classes"), [(20, 426, 2), (9, 1000, 3), (30, 5000, 2)]
)
def test_halving_plan_is_sklearns(candidates, n_samples, n_classes):
    from scipy.stats import loguniform
    from sklearn.datasets import make_classification
    from sklearn.naive_bayes import GaussianNB

    X, y = make_classification(
        n_samples, 5, n_informative=3, n_redundant=0, n_classes=n_classes, random_state=0
    )
    search = HalvingRandomSearchCV(
        GaussianNB(),
        {"var_smoothing": loguniform(1e-11, 1e-5)},
        n_candidates=candidates,
        min_resources="exhaust",
        cv=CV,
        random_state=0,
    ).fit(X, y)
    plan = halving_plan(candidates, n_samples, CV, n_classes)
    assert [r.n_resources for r in plan] == search.n_resources_
    assert [r.n_candidates for r in plan] == search.n_candidates_


def test_a_raising_candidate_scores_nan_and_the_search_goes_on(ref):
    """LDA's svd solver takes no shrinkage: that candidate fails on every fold."""
    space = parse_space({"lda": {"solver": ["svd", "lsqr"], "shrinkage": [None, "auto"]}}, "grid")
    _, result = ours(ref, "lda", "grid", space["lda"], sequential(ref))
    failed = [r for r in result.rows if math.isnan(r["mean_test_score"])]
    assert [r["params"] for r in failed] == [{"shrinkage": "auto", "solver": "svd"}]
    assert result.n_failed == CV and len(failed[0]["errors"]) == CV
    assert failed[0]["rank_test_score"] == len(result.rows)  # ranked last
    assert not math.isnan(result.best["mean_test_score"]) and not result.all_failed


def test_every_candidate_failing_is_all_failed(ref):
    space = parse_space({"lda": {"solver": ["svd"], "shrinkage": ["auto"]}}, "grid")
    _, result = ours(ref, "lda", "grid", space["lda"], sequential(ref))
    assert result.all_failed and result.n_failed == CV
    assert "NotImplementedError" in result.errors[0]


def test_bytes_per_fit_do_not_grow_with_the_data():
    """A fit ships its DatasetRef, not the data: the same size for 300 and 30,000 rows."""
    sizes = []
    for rows in (300, 30_000):
        ref = prepare(f"synthetic:n_samples={rows},n_features=30", None, 0.25, SEED)
        job = FitJob("logreg", {"C": 1.0}, Fold(CV, 0, SEED), "f1_macro", 0)
        sizes.append(len(pickle.dumps((fit_cache.fit_and_store, ref, job, "/tmp/cache"))))
    assert abs(sizes[0] - sizes[1]) <= 4 and sizes[0] < 2000, sizes


def test_fit_key_changes_with_what_changes_the_fit(ref, tmp_path, monkeypatch):
    """``fit_key``'s rule: what changes the score changes the key; the candidate's and
    round's positions, the parameters' order and the process that asks do not."""
    job = FitJob("logreg", {"C": 1.0, "max_iter": 200}, Fold(CV, 0, SEED), "f1_macro", 0)
    key = fit_cache.fit_key(ref, job)
    same = (
        dataclasses.replace(job, candidate=5),
        dataclasses.replace(job, iteration=2),
        dataclasses.replace(job, params={"max_iter": 200, "C": 1.0}),
    )
    for twin in same:
        assert fit_cache.fit_key(ref, twin) == key, twin
    assert fit_cache.fit_key(dataclasses.replace(ref), job) == key
    other_data = dataclasses.replace(ref, fingerprint="0" * 64)
    assert fit_cache.fit_key(other_data, job) != key
    for other in (
        dataclasses.replace(job, model="lda"),
        dataclasses.replace(job, params={"C": 2.0, "max_iter": 200}),
        dataclasses.replace(job, fold=Fold(CV, 1, SEED)),
        dataclasses.replace(job, fold=Fold(CV, 0, 1)),
        dataclasses.replace(job, fold=Fold(5, 0, SEED)),
        dataclasses.replace(job, fold=Fold(CV, 0, SEED, 100)),
        dataclasses.replace(job, scoring="accuracy"),
    ):
        assert fit_cache.fit_key(ref, other) != key, other
    with monkeypatch.context() as patched:
        patched.setattr(fit_cache, "CODE_VERSION", "changed-code")
        assert fit_cache.fit_key(ref, job) != key
    # another process (a Dask worker) finds the same file
    code = (
        "import sys, pickle; from prefect_sklearn_dask.flow import fit_cache; "
        "print(fit_cache.fit_key(*pickle.loads(bytes.fromhex(sys.argv[1]))))"
    )
    blob = pickle.dumps((ref, job)).hex()
    elsewhere = subprocess.run(
        [sys.executable, "-c", code, blob], capture_output=True, text=True, check=True
    )
    assert elsewhere.stdout.strip() == key
    assert fit_cache.load(str(tmp_path), key) is None
    result = fit_cache.fit_and_store(ref, job, str(tmp_path))
    assert fit_cache.load(str(tmp_path), key) == result
    assert [p.name for p in tmp_path.iterdir()] == [f"{key}.joblib"]


@pytest.mark.parametrize(
    ("kind", "n_iter", "cv", "space", "message"),
    [
        ("bayes", 10, 3, None, "unknown search 'bayes'; choose from none, grid"),
        ("random", 0, 3, None, "--n-iter must be at least 1"),
        ("grid", 10, 1, None, "--cv must be at least 2"),
        ("grid", 10, 3, {"catboost": {"eta": [1]}}, "unknown model 'catboost'"),
        ("grid", 10, 3, {"svc": {"Cee": [1]}}, "takes no parameter Cee; it takes: C,"),
        ("random", 10, 3, {"svc": {"C": "loguniform(1e-3"}}, "cannot parse"),
        ("random", 10, 3, {"svc": {"C": "lognormal(1, 2)"}}, "unknown distribution"),
        ("random", 10, 3, {"svc": {"C": "loguniform(10, 1)"}}, "cannot parse distribution"),
        ("grid", 10, 3, {"svc": {"C": "loguniform(1, 10)"}}, "needs a list of values"),
        ("grid", 10, 3, {"svc": {"C": []}}, "empty list"),
        ("grid", 10, 3, {"svc": {}}, "search space of 'svc' is empty"),
    ],
)
def test_bad_search_options_are_user_errors(kind, n_iter, cv, space, message):
    with pytest.raises(UserError, match=re.escape(message)):
        check_options(kind, n_iter, cv, space)


def test_search_defaults_to_three_folds_and_parses_distributions():
    cv, spaces = check_options(
        "random", 5, 0, {"svc": {"C": "loguniform(0.01, 100)", "gamma": 0.1}}
    )
    assert cv == 3
    assert spaces["svc"]["gamma"] == [0.1]
    assert 0.01 <= spaces["svc"]["C"].rvs(random_state=0) <= 100


def test_thread_fan_out_keeps_order_and_caps_fits_in_flight():
    import threading
    import time

    lock, running, peak = threading.Lock(), [0], [0]

    def call(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return i * i

    seen: list[int] = []
    out = fan_out(
        call, [(i,) for i in range(12)], limit=2, local_jobs=4, on_done=lambda i, r: seen.append(i)
    )
    assert out == [i * i for i in range(12)]
    assert sorted(seen) == list(range(12))
    assert peak[0] == 2
