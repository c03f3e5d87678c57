"""Fit-cache semantics: resume what did not finish, train again after a completed run.

Real flow runs on the test server (threads runner, iris, fast models); the rules
themselves (:mod:`prefect_sklearn_dask.flow.fit_cache`) are also checked directly,
since hyper-parameter search fits follow them too.
"""

from __future__ import annotations

import pytest
from sklearn.naive_bayes import GaussianNB

from prefect_sklearn_dask.flow.fit_cache import open_fit_cache, parameter_key
from prefect_sklearn_dask.flow.train_flow import train_flow
from prefect_sklearn_dask.ml import registry
from prefect_sklearn_dask.ml.registry import ModelSpec


class BrokenNB(GaussianNB):
    def fit(self, X, y, **kwargs):
        raise RuntimeError("this model always breaks")


def run(tmp_path, models=("nb", "logreg"), **kwargs):
    return train_flow(
        dataset="iris", models=list(models), runner="threads", storage=str(tmp_path), **kwargs
    )


def test_a_completed_run_trains_again_unless_reuse_fits(prefect_api, tmp_path):
    first = run(tmp_path)["cache"]
    assert first["reused"] == 0
    assert first["said"].startswith("trained all 2 fits (none cached")

    again = run(tmp_path)["cache"]
    assert again["reused"] == 0, "a completed run's fits were reused without --reuse-fits"
    assert "an identical run completed before (--reuse-fits" in again["said"]

    reused = run(tmp_path, reuse_fits=True)["cache"]
    assert reused["reused"] == 2
    assert reused["said"] == "--reuse-fits: reused 2 of 2 fits from earlier completed runs"

    assert run(tmp_path)["cache"]["reused"] == 0  # --reuse-fits did not change the default


def test_a_run_that_did_not_complete_is_resumed(prefect_api, tmp_path, monkeypatch):
    """A run that fails (here: too many failed models) leaves its finished fits for the
    re-run of the same command; once a run completes, the next one trains again."""
    monkeypatch.setitem(
        registry.REGISTRY, "broken", ModelSpec("broken", "Broken", lambda s: BrokenNB())
    )
    models = ("nb", "logreg", "broken")
    state = run(tmp_path, models, max_failures=0, return_state=True)
    assert state.is_failed()

    resumed = run(tmp_path, models)["cache"]  # no --max-failures: completes this time
    assert resumed["reused"] == 2
    assert resumed["said"].startswith("resumed: reused 2 of 3 fits an unfinished run")
    assert run(tmp_path, models)["cache"]["reused"] == 0


def test_generations_follow_completed_runs(tmp_path):
    params = {"data": "abc", "seed": 0, "models": ["nb"]}
    first = open_fit_cache(tmp_path, params)
    assert open_fit_cache(tmp_path, params).namespace == first.namespace  # not completed yet
    first.complete()
    second = open_fit_cache(tmp_path, params)
    assert second.namespace != first.namespace
    assert open_fit_cache(tmp_path, params, reuse=True).namespace == first.namespace
    first.complete()  # a late duplicate of the first run does not skip a generation
    assert open_fit_cache(tmp_path, params).namespace == second.namespace
    other = open_fit_cache(tmp_path, {**params, "seed": 1})
    assert other.generation == 0 and other.params_key != first.params_key
    assert parameter_key({"a": 1, "b": 2}) == parameter_key({"b": 2, "a": 1})


def test_reuse_fits_with_no_cache_is_refused(run_cli):
    result = run_cli("flows/train.py", "--runner", "threads", "--no-cache", "--reuse-fits")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --reuse-fits reads the fit cache that --no-cache turns off; drop one"
    ]


@pytest.mark.parametrize("script", ["flows/train.py"])
def test_help_shows_only_meaningful_defaults(run_cli, script):
    result = run_cli(script, "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "(default: None)" not in text
    assert "(default: True)" not in text and "(default: False)" not in text
    assert "--no-cache train every model afresh" in text
    assert "--reuse-fits also reuse the fits" in text
    assert "where tasks run (default: dask)" in text
    assert "held-out fraction (default: 0.25)" in text
    assert "(default: one per core)" in text
