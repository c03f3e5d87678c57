import pytest

from prefect_sklearn_dask.ml.data import prepare
from prefect_sklearn_dask.ml.errors import DataError
from prefect_sklearn_dask.ml.evaluate import rank, train_and_evaluate
from prefect_sklearn_dask.ml.registry import REGISTRY


@pytest.fixture(scope="module")
def iris():
    return prepare("iris", None, 0.25, 0)


@pytest.mark.parametrize("model", sorted(REGISTRY))
def test_every_model_trains_and_scores(iris, model):
    report = train_and_evaluate(model, iris, seed=0)
    assert 0.5 < report.accuracy <= 1.0
    assert 0.0 <= report.f1_macro <= 1.0
    assert report.fit_seconds > 0 and report.predict_seconds > 0
    assert report.n_train + report.n_test == iris.n_rows
    assert report.estimator.predict(iris_rows()).shape == (2,)


def iris_rows():
    from sklearn.datasets import load_iris

    return load_iris(as_frame=True).data.head(2)


def test_same_seed_same_scores(iris):
    first = train_and_evaluate("mlp", iris, seed=3).row()
    second = train_and_evaluate("mlp", iris, seed=3).row()
    for key in ("accuracy", "f1_macro", "roc_auc"):
        assert first[key] == second[key]


def test_roc_auc_only_where_defined(iris):
    assert train_and_evaluate("rf", iris).roc_auc is not None
    assert train_and_evaluate("svc", iris).roc_auc is None  # multiclass, no probabilities
    binary = prepare("breast_cancer", None, 0.25, 0)
    assert train_and_evaluate("svc", binary).roc_auc is not None


def test_cross_validation(iris):
    report = train_and_evaluate("logreg", iris, cv=3)
    assert report.cv_folds == 3 and 0.5 < report.cv_f1_macro_mean <= 1.0
    with pytest.raises(DataError, match="lower --cv"):
        train_and_evaluate("logreg", iris, cv=100)


def test_rank_best_first(iris):
    reports = [train_and_evaluate(m, iris) for m in ("nb", "rf", "logreg")]
    ranked = rank(reports, "accuracy")
    assert ranked[0].accuracy == max(r.accuracy for r in reports)
    with pytest.raises(DataError):
        rank(reports, "speed")
