"""The ``search`` workloads of ``benchmarks/compare.py`` on a real LocalCluster, tiny sizes.

Behaviour only: every backend runs the same fits, bytes per fit are recorded (and do not
grow with the data), halving's comparison has its fields, a missing optional backend is
a row that says why. No speed thresholds: speed is what the benchmark reports.
"""

from __future__ import annotations

import sys

import pytest

from prefect_sklearn_dask.benchmarks import search_bench as sb
from prefect_sklearn_dask.benchmarks.base import Env, Skipped
from prefect_sklearn_dask.benchmarks.catalog import measure
from prefect_sklearn_dask.benchmarks.report import summarize
from prefect_sklearn_dask.benchmarks.work import warm_process

SPACE = {"nb": {"var_smoothing": [1e-9, 1e-7]}, "lda": {"solver": ["svd", "lsqr"]}}
# dask-ml's row (measured or skipped) is covered by the quick suite (test_benchmarks.py)
GRID_BACKENDS = (sb.PROJECT, sb.SKLEARN, "raw-dask")


@pytest.fixture(scope="module")
def env(local_cluster):
    from distributed import Client

    with Client(local_cluster, set_as_default=False) as client:
        yield Env(2, local_cluster.scheduler_address, client, quick=True, timeout=120)


def _rows(env: Env, workloads: list, backends: tuple[str, ...]) -> dict:
    env.client.run(warm_process, [w.data for w in workloads])
    results = {}
    for workload in workloads:
        for backend in backends:
            reason = sb.skip_reason(backend)
            got = Skipped(reason) if reason else measure(backend, workload, env)
            results[(workload.name, env.workers, backend)] = [got]
    sizes = {w.name: w.dataset_bytes for w in workloads}
    return {(r["workload"], r["backend"]): r for r in summarize(results, sizes)}


def test_every_backend_does_the_same_fits_and_halving_reports_its_scores(env):
    # halving samples 2 points of each 2-point grid: all of them, one round on all rows
    workload = sb.make(
        "search",
        "synthetic:n_samples=400,n_features=6",
        SPACE,
        (*GRID_BACKENDS, sb.HALVING),
        halving_n_iter=2,
    )
    rows = _rows(env, [workload], (*GRID_BACKENDS, sb.HALVING))
    measured = [rows[("search", b)] for b in GRID_BACKENDS]
    assert {r["n_tasks"] for r in measured} == {len(workload.items)} == {12}
    assert all(r["error"] == "" and r["bytes_per_task"] > 0 for r in measured)

    grid, halving = rows[("search", sb.PROJECT)], rows[("search", sb.HALVING)]
    assert set(grid["best_cv_by_model"]) == set(halving["best_cv_by_model"]) == {"nb", "lda"}
    assert grid["best_cv"] == max(grid["best_cv_by_model"].values())
    assert grid["fits_by_model"] == {"nb": 6, "lda": 6}
    assert sum(halving["fits_by_model"].values()) == halving["n_tasks"]
    assert 0 < halving["row_weighted_fits"] <= halving["n_tasks"]

    goal = sb.halving_goal(lambda w, b: rows.get((w, b)), "")
    assert goal.passed is not None
    for text in ("(halving)", "(grid)", "gap", f"vs {grid['n_tasks']} fits", "nb ", "lda "):
        assert text in goal.measured


def test_bytes_per_fit_do_not_grow_with_the_data(env):
    """The 10 MB / 100 MB rows at 1/100 of the size: same fits, data shipped by reference."""
    backends = (sb.PROJECT, "raw-dask")
    small = sb.make("search-10mb", "synthetic:n_samples=560,n_features=30", SPACE, backends)
    big = sb.make("search-100mb", "synthetic:n_samples=5600,n_features=30", SPACE, backends)
    rows = _rows(env, [small, big], backends)
    for name in ("search-10mb", "search-100mb"):
        assert all(rows[(name, b)]["bytes_per_task"] > 0 for b in backends)
    goal = sb.bytes_goal(lambda w, b: rows.get((w, b)), "")
    assert goal.passed is True, goal.measured
    assert "B/fit at 10 MB" in goal.measured and "at 100 MB" in goal.measured


def test_missing_dask_ml_is_a_row_with_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_ml.model_selection", None)  # import fails
    reason = sb.skip_reason(sb.DASK_ML)
    assert reason and "dask-ml not installed" in reason and ".[bench]" in reason
    (row,) = summarize({("search", 2, sb.DASK_ML): [Skipped(reason)]}, {"search": 0})
    assert row["skipped"] == reason and row["error"] == "" and row["wall_median_s"] is None
    assert sb.skip_reason(sb.PROJECT) is None


def test_search_workload_expands_to_its_group():
    from prefect_sklearn_dask.benchmarks.catalog import expand

    assert expand(["seed", "search"], quick=True) == ["seed", "search"]
    assert expand(["search"], quick=False) == [
        "search",
        "search-large",
        "search-uneven",
        "search-10mb",
        "search-100mb",
    ]


def test_unknown_workload_is_one_line(run_cli):
    result = run_cli("benchmarks/compare.py", "--workload", "serach")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: unknown workload serach; choose from seed, grid, tiny, bigdata, search, optuna, "
        "partitioned, default-job"
    )
