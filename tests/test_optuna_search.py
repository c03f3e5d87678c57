"""``--search optuna``'s driver and space mapping, in-process (no Prefect, no Dask).

The fold runner here finishes submitted fits in an order the test chooses (first,
last, shuffled), standing in for a cluster whose timing differs run to run: the study's
trials must not depend on it.
"""

from __future__ import annotations

import random

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from prefect_sklearn_dask.ml.data import prepare
from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.ml.optuna_search import StudyPlan, run_study
from prefect_sklearn_dask.ml.optuna_space import check_optuna, check_pruner, to_optuna
from prefect_sklearn_dask.ml.registry import REGISTRY
from prefect_sklearn_dask.ml.search import fit_one
from prefect_sklearn_dask.ml.search_space import parse_space, space_for

# a cheap model, and a range whose high end scores badly, so the pruner has work
SPACE = parse_space(
    {"tree": {"max_depth": "randint(1, 6)", "min_samples_leaf": "randint(1, 40)"}}, "optuna"
)["tree"]
FITS: dict = {}  # the same fit is fitted once per module (the orders replay the same jobs)


def fit(ref, job):
    key = (job.model, tuple(sorted(job.params.items())), job.fold)
    if key not in FITS:
        FITS[key] = fit_one(ref, job)
    return FITS[key]


class OrderedRunner:
    """Fits run when taken back; ``order`` picks which pending fit finishes next."""

    def __init__(self, ref, order: str, seed: int = 0) -> None:
        self.ref, self.order, self.rng = ref, order, random.Random(seed)
        self.pending: list = []
        self.peak = 0

    def submit(self, tag, job) -> None:
        self.pending.append((tag, job))
        self.peak = max(self.peak, len(self.pending))

    def completed(self):
        index = {"first": 0, "last": -1}.get(self.order)
        if index is None:
            index = self.rng.randrange(len(self.pending))
        tag, job = self.pending.pop(index)
        return [(tag, fit(self.ref, job))]


@pytest.fixture(scope="module")
def ref():
    return prepare("iris", None, 0.25, 0)


def study(ref, order: str, *, pruner: str = "median", seed: int = 0, n_iter: int = 12, par=3):
    plan = StudyPlan("tree", "f1_macro", 3, seed, n_iter, par, pruner, "tree", None)
    runner = OrderedRunner(ref, order, seed=len(order))
    outcome = run_study(plan, to_optuna("tree", SPACE), runner)
    return outcome, runner


def trials(outcome) -> list[tuple]:
    return [(t.number, t.state, t.params, t.scores) for t in outcome.trials]


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_same_seed_same_trials_whatever_finishes_first(ref, pruner):
    """Oldest fit first, newest first, shuffled: the same trials. (Without the pruner's
    view of the study as of each ask, Hyperband's decisions differ here.)"""
    orders = ("first", "last", "shuffled")
    runs = {order: study(ref, order, pruner=pruner, n_iter=16, par=4) for order in orders}
    first, _ = runs["first"]
    assert len(first.trials) == 16 and first.count("pruned") >= 1
    assert all(runner.peak == 4 for _, runner in runs.values())  # 4 trials in flight
    for outcome, _ in runs.values():
        assert trials(outcome) == trials(first)
    other, _ = study(ref, "first", pruner=pruner, seed=1, n_iter=16, par=4)
    assert trials(other) != trials(first)


def test_pruned_trials_run_fewer_folds_and_none_prunes_nothing(ref):
    pruned, _ = study(ref, "shuffled")
    unpruned, _ = study(ref, "shuffled", pruner="none")
    assert unpruned.count("pruned") == 0 and unpruned.n_fits == 12 * 3
    assert pruned.n_fits < unpruned.n_fits
    for t in pruned.trials:
        assert len(t.scores) == (3 if t.state == "complete" else len(t.scores))
        if t.state == "pruned":
            assert len(t.scores) < 3
    assert pruned.history[-1]["best"] == round(pruned.best.value, 6)


@pytest.mark.parametrize(("pruner", "folds_run"), [("median", 1), ("none", 3)])
def test_a_raising_trial_is_failed_and_the_study_goes_on(ref, pruner, folds_run):
    """With a pruner a trial stops at its first raising fold; without one its folds
    went out together (nothing to decide between them), so all of them ran."""
    space = parse_space({"lda": {"solver": ["svd", "lsqr"], "shrinkage": ["auto", None]}}, "x")
    plan = StudyPlan("lda", "f1_macro", 3, 0, 10, 2, pruner, "lda", None)
    runner = OrderedRunner(ref, "last")
    outcome = run_study(plan, to_optuna("lda", space["lda"]), runner)
    failed = [t for t in outcome.trials if t.state == "failed"]
    assert failed and outcome.count("complete") >= 1 and len(outcome.trials) == 10
    assert all(t.params == {"solver": "svd", "shrinkage": "auto"} for t in failed)
    assert all("NotImplementedError" in t.error and len(t.scores) == folds_run for t in failed)
    assert outcome.best.params != {"solver": "svd", "shrinkage": "auto"}
    assert runner.peak == 2 * folds_run  # 2 trials in flight, 1 or all 3 folds each


def test_a_stored_study_resumes_with_its_finished_trials(ref, tmp_path):
    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    plan = StudyPlan("tree", "f1_macro", 3, 0, 4, 2, "median", "resume", url)
    first = run_study(plan, to_optuna("tree", SPACE), OrderedRunner(ref, "first"))
    more = StudyPlan(**{**plan.__dict__, "n_iter": 6})
    again = run_study(more, to_optuna("tree", SPACE), OrderedRunner(ref, "first"))
    assert [t.resumed for t in again.trials] == [True] * 4 + [False] * 2
    assert trials(again)[:4] == trials(first) and again.n_fits <= 2 * 3
    fresh = run_study(
        StudyPlan(**{**more.__dict__, "storage": None}),
        to_optuna("tree", SPACE),
        OrderedRunner(ref, "first"),
    )
    assert trials(again) == trials(fresh)  # as if the first run had not stopped


def test_registry_spaces_map_onto_optuna():
    for model in REGISTRY:
        to_optuna(model, space_for(model, "optuna"))
    svc = to_optuna("svc", space_for("svc", "optuna")).distributions
    assert svc["C"] == FloatDistribution(1e-2, 1e2, log=True)
    knn = to_optuna("knn", space_for("knn", "optuna")).distributions
    assert knn["n_neighbors"] == IntDistribution(1, 30)  # scipy's randint(1, 31)
    assert knn["weights"] == CategoricalDistribution(["uniform", "distance"])
    mlp = to_optuna("mlp", space_for("mlp", "optuna"))
    stored = mlp.distributions["hidden_layer_sizes"].choices
    assert all(isinstance(c, str) for c in stored)  # plain JSON in the study database
    assert mlp.decode({"hidden_layer_sizes": "(64, 32)", "alpha": 0.1}) == {
        "hidden_layer_sizes": (64, 32),
        "alpha": 0.1,
    }
    uniform = to_optuna("svc", parse_space({"svc": {"C": "uniform(1, 4)"}}, "optuna")["svc"])
    assert uniform.distributions["C"] == FloatDistribution(1.0, 5.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_pruner("asha", "optuna"), "unknown pruner 'asha'; choose from median"),
        (lambda: check_pruner("hyperband", "random"), "--pruner hyperband needs --search optuna"),
        (
            lambda: check_optuna(
                "optuna", None, ["svc"], parse_space({"svc": {"C": "expon(1)"}}, "optuna")
            ),
            "search space of 'svc', parameter 'C': --search optuna cannot express expon",
        ),
    ],
)
def test_bad_optuna_input_is_a_user_error(call, message):
    with pytest.raises(UserError, match=None) as raised:
        call()
    assert message in str(raised.value)
