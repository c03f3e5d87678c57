import numpy as np
import pandas as pd
import pytest

from prefect_sklearn_dask.ml.data import kind_of, load_split, parse_synthetic, prepare
from prefect_sklearn_dask.ml.errors import DataError


@pytest.mark.parametrize("name", ["iris", "wine", "breast_cancer", "digits"])
def test_builtin_datasets(name):
    ref = prepare(name, None, 0.25, 0)
    split = load_split(ref)
    assert ref.n_classes == len(split.classes) >= 2
    assert len(split.X_train) + len(split.X_test) == ref.n_rows


def test_synthetic_of_any_size():
    ref = prepare("synthetic:n_samples=300,n_features=7,n_classes=3", None, 0.2, 1)
    assert (ref.n_rows, ref.n_features, ref.n_classes) == (300, 7, 3)
    assert parse_synthetic("synthetic")["n_samples"] == 5000


@pytest.mark.parametrize(
    "spec",
    ["synthetic:n_rows=10", "synthetic:n_samples=abc", "synthetic:n_features=3,n_classes=10"],
)
def test_bad_synthetic_specs(spec):
    with pytest.raises(DataError):
        prepare(spec, None, 0.25, 0)


def test_csv_with_categories_and_missing_values(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=120),
            "colour": rng.choice(["red", "green", None], size=120),
            "flag": rng.choice([True, False], size=120),
            "label": rng.choice(["yes", "no"], size=120),
        }
    )
    frame.loc[::7, "x"] = np.nan
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    ref = prepare(str(path), "label", 0.25, 0)
    split = load_split(ref)
    assert set(split.classes) == {"no", "yes"}
    assert ref.n_features == 3


def test_parquet_files_load(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"a": range(40), "b": [0, 1] * 20}).to_parquet(path)
    assert prepare(str(path), "b", 0.25, 0).n_rows == 40


def _csv(tmp_path, frame):
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("frame", "target", "message"),
    [
        (pd.DataFrame({"a": [1, 2, 3, 4], "y": [1, 1, 1, 1]}), "y", "one class"),
        (pd.DataFrame({"a": [1, 2, 3, 4], "y": [0, 1, 0, 1]}), "label", "not in"),
        (pd.DataFrame({"a": [1, 2, 3, 4], "y": [0, 1, 0, 1]}), None, "pass --target"),
        (pd.DataFrame({"a": pd.Series([], dtype=float), "y": []}), "y", "no rows"),
        (pd.DataFrame({"a": [np.nan] * 4, "b": [1, 2, 3, 4], "y": [0, 1, 0, 1]}), "y", "empty"),
        (pd.DataFrame({"a": [1, 2, 3, 4, 5], "y": [0, 1, 0, 1, 2]}), "y", "only one row"),
        (pd.DataFrame({"y": [0, 1, 0, 1]}), "y", "no feature"),
    ],
)
def test_unusable_data_is_a_clear_error(tmp_path, frame, target, message):
    with pytest.raises(DataError, match=message):
        prepare(_csv(tmp_path, frame), target, 0.25, 0)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        prepare(str(tmp_path / "nope.csv"), "y", 0.25, 0)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        prepare(str(tmp_path / "empty.csv"), "y", 0.25, 0)
    with pytest.raises(DataError, match="unknown dataset"):
        kind_of("data.xlsx")


def test_a_file_changed_after_prepare_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"a": range(20), "y": [0, 1] * 10}).to_csv(path, index=False)
    ref = prepare(str(path), "y", 0.25, 0)
    pd.DataFrame({"a": range(20), "y": [1, 0] * 10}).to_csv(path, index=False)
    from prefect_sklearn_dask.ml import data

    data._SPLITS.clear()
    with pytest.raises(DataError, match="changed"):
        load_split(ref)
