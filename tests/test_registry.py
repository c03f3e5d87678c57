import pytest

from prefect_sklearn_dask.ml.errors import ModelError
from prefect_sklearn_dask.ml.registry import (
    DEFAULT_MODELS,
    REGISTRY,
    build_estimator,
    by_cost,
    grid_points,
    parse_models,
)


def test_registry_covers_the_model_families():
    assert len(REGISTRY) >= 8
    assert {"logreg", "rf", "hgb", "svc", "knn", "nb", "mlp"} <= set(REGISTRY)
    assert set(DEFAULT_MODELS) <= set(REGISTRY)


def test_parse_models_normalises_and_deduplicates():
    assert parse_models(" RF,logreg,rf ") == ["rf", "logreg"]
    assert parse_models(None) == list(DEFAULT_MODELS)


@pytest.mark.parametrize("bad", ["rf,xgboost", "", " , "])
def test_parse_models_rejects_unknown_or_empty(bad):
    with pytest.raises(ModelError):
        parse_models(bad)


def test_every_estimator_is_single_threaded_and_seeded():
    for name in REGISTRY:
        params = build_estimator(name, seed=7).get_params()
        assert params.get("n_jobs", 1) in (1, None), name
        if "random_state" in params:
            assert params["random_state"] == 7, name


def test_grid_points_expand_every_combination():
    points = grid_points("rf")
    assert len(points) == 4
    assert {"n_estimators": 100, "max_depth": None} in points
    for name in REGISTRY:
        for point in grid_points(name):
            build_estimator(name, 0, point)


def test_unknown_hyper_parameter_is_a_model_error():
    with pytest.raises(ModelError, match="no hyper-parameter"):
        build_estimator("rf", 0, {"n_trees": 3})


def test_by_cost_puts_slow_fits_first():
    order = by_cost(["nb", "gb", "logreg", "rf"])
    assert order[0] == "gb" and order[-1] == "nb"


def test_default_models_start_with_the_longest_fits():
    """mlp (~2.4 s) and rf (~1.1 s) dominate the default set: submitted late, they stretched
    a 2-worker run to 0.65 of the critical-path bound (0.8 once submitted first)."""
    assert by_cost(DEFAULT_MODELS)[:2] == ["mlp", "rf"]
