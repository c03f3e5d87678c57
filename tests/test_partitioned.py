"""Partitioned data on a real 2-process LocalCluster: bad input named by file, metrics
computed as reductions equal to the in-memory path's, a stable split, Parquet predictions
in row order, and S3 through a real moto server on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from prefect_sklearn_dask.ml import evaluate
from prefect_sklearn_dask.ml.errors import DataError
from prefect_sklearn_dask.ml.partitioned.predict import predict_to_parquet
from prefect_sklearn_dask.ml.partitioned.profile import profile_source
from prefect_sklearn_dask.ml.partitioned.source import open_source
from prefect_sklearn_dask.ml.partitioned.synthetic import synthetic_partition
from prefect_sklearn_dask.ml.partitioned.train import marked, side, train_and_score
from tests.conftest import free_port, two_workers

pytestmark = pytest.mark.timeout(120)
ROWS = 4000
# AUC from 4096-bin histograms: ties within a bin count half.
AUC_BINNING = 2e-3


@pytest.fixture(scope="module")
def client():
    with two_workers() as client:
        yield client


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parts")
    frame = synthetic_partition(ROWS, 6, seed=1, classes=3)
    frame.loc[::13, "f2"] = np.nan
    frame.loc[::29, "colour"] = None
    bounds = np.linspace(0, ROWS, 5).astype(int)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        frame.iloc[a:b].to_parquet(folder / f"part-{i}.parquet", index=False)
    return folder


# --- bad input, from metadata alone (no cluster) ----------------------------------------


def _good(folder, name="a.parquet", **changes) -> pd.DataFrame:
    frame = synthetic_partition(50, 3, seed=0).assign(**changes)
    frame.to_parquet(folder / name, index=False)
    return frame


def test_no_files(tmp_path):
    (tmp_path / "_SUCCESS").write_text("")
    with pytest.raises(DataError, match="no Parquet or CSV files"):
        open_source(str(tmp_path), "label")
    with pytest.raises(DataError, match="no Parquet or CSV files"):
        open_source(str(tmp_path / "*.parquet"), "label")


def test_a_corrupt_partition_is_named(tmp_path):
    _good(tmp_path)
    (tmp_path / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=r"cannot read partition '.*b\.parquet'"):
        open_source(str(tmp_path), "label")


def test_a_missing_target_is_named(tmp_path):
    _good(tmp_path)
    with pytest.raises(DataError, match=r"target column 'y' not in '.*a\.parquet'.*f0, f1"):
        open_source(str(tmp_path), "y")


def test_partitions_whose_columns_disagree(tmp_path):
    _good(tmp_path)
    _good(tmp_path, "b.parquet", extra=1.0)
    with pytest.raises(DataError, match=r"'.*b\.parquet' has extra extra"):
        open_source(str(tmp_path), "label")


def test_a_column_of_another_kind_is_named(tmp_path):
    _good(tmp_path)
    _good(tmp_path, "b.parquet", f0="text")
    with pytest.raises(DataError, match=r"column 'f0' holds category values in '.*b\.parquet'"):
        open_source(str(tmp_path), "label")


def test_one_class_from_parquet_statistics(tmp_path):
    _good(tmp_path, label=np.int8(1))
    _good(tmp_path, "b.parquet", label=np.int8(1))
    with pytest.raises(DataError, match="one class"):
        open_source(str(tmp_path), "label")


# --- bad input that only the cluster's pass sees (CSV has no statistics) ------------------


def test_one_class_in_csv_files(client, tmp_path):
    for name in ("a", "b"):
        synthetic_partition(40, 3, seed=0).assign(label=7).to_csv(tmp_path / f"{name}.csv")
    source = open_source(str(tmp_path / "*.csv"), "label")
    with pytest.raises(DataError, match=r"one class \(7\)"):
        profile_source(client, source)


def test_missing_targets_and_bad_values_name_their_file(client, tmp_path):
    good = synthetic_partition(40, 3, seed=0)
    good.to_csv(tmp_path / "a.csv", index=False)
    good.assign(label=good["label"].where(good.index > 3)).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match=r"4 missing value\(s\), 4 in '.*b\.csv'"):
        profile_source(client, open_source(str(tmp_path), "label"))
    (tmp_path / "b.csv").unlink()
    # past the sampled rows: found by the worker that reads the partition
    rows = ["f0,f1,f2,colour,label"] + ["1.0,2.0,3.0,red,1"] * 1200 + ["oops,2,3,red,0"]
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"column 'f0' of '.*c\.csv' does not hold number"):
        profile_source(client, open_source(str(tmp_path), "label"))


# --- training, metrics, split, predict ---------------------------------------------------


@pytest.mark.parametrize("model", ["xgb", "sgd"])
def test_metrics_equal_the_in_memory_path(client, data_dir, model):
    """Reductions on the workers == ml/evaluate.py's scikit-learn metrics on the same
    predictions of the gathered test rows (exact; AUC within the binning)."""
    source = open_source(str(data_dir), "label")
    profile = profile_source(client, source)
    assert profile.n_rows == ROWS and profile.classes == (0, 1, 2)
    report = train_and_score(client, source, profile, model, seed=3, test_size=0.3)

    test = side(marked(source, profile, 3, 0.3), test=True).compute()
    y = test["label"].cat.codes.to_numpy()
    predicted = report.estimator.predict(test)
    assert report.n_test == len(test) and report.n_train == ROWS - len(test)
    assert 0.2 < len(test) / ROWS < 0.4
    assert report.accuracy == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    assert report.f1_macro == pytest.approx(f1_score(y, predicted, average="macro"), abs=1e-12)
    assert report.confusion == confusion_matrix(y, predicted, labels=[0, 1, 2]).tolist()
    in_memory_auc = evaluate.roc_auc(report.estimator, test, y, 3)
    assert report.roc_auc == pytest.approx(in_memory_auc, abs=AUC_BINNING)
    assert report.accuracy > 0.6
    assert set(report.roc_curves) == {"0", "1", "2"}


def test_the_split_does_not_depend_on_the_partitioning(client, data_dir, tmp_path):
    frame = pd.read_parquet(data_dir)
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(tmp_path / f"p{i}.parquet", index=False)
    held_out = []
    for folder in (data_dir, tmp_path):
        source = open_source(str(folder), "label")
        profile = profile_source(client, source)
        test = side(marked(source, profile, 5, 0.25), test=True).compute()
        held_out.append(sorted(test["row_id"]))
    assert held_out[0] == held_out[1]


def test_predictions_are_parquet_partitions_in_row_order(client, data_dir, tmp_path):
    source = open_source(str(data_dir), "label")
    profile = profile_source(client, source)
    report = train_and_score(client, source, profile, "sgd", seed=0)
    out = tmp_path / "out"
    done = predict_to_parquet(client, report.estimator, list(profile.classes), source, str(out))
    assert done.rows == ROWS and done.files == 4 and done.rows_per_second > 0
    assert sorted(p.name for p in out.iterdir()) == [f"part-{i:05d}.parquet" for i in range(4)]
    written = pd.read_parquet(out)
    assert written["row_id"].tolist() == list(range(ROWS))
    raw = pd.read_parquet(data_dir)
    expected = np.asarray(profile.classes)[report.estimator.predict(raw)]
    assert (written["prediction"].to_numpy() == expected).all()
    assert list(written.columns) == ["row_id", "prediction", "proba_0", "proba_1", "proba_2"]


# --- object store: a real S3-compatible server on 127.0.0.1 ------------------------------


@pytest.fixture
def s3(monkeypatch):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {
        "endpoint_url": f"http://127.0.0.1:{port}",
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
    }
    try:
        yield options
    finally:
        server.stop()


def test_s3_partitions_are_read_by_the_workers(client, data_dir, s3):
    import boto3
    import s3fs

    boto3.client(
        "s3",
        endpoint_url=s3["endpoint_url"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="bucket")
    fs = s3fs.S3FileSystem(**s3, skip_instance_cache=True)
    for path in sorted(data_dir.iterdir()):
        fs.put_file(str(path), f"bucket/data/{path.name}")
    source = open_source("s3://bucket/data/", "label", storage_options=s3)
    assert source.files == [f"s3://bucket/data/part-{i}.parquet" for i in range(4)]
    assert "secret" not in repr(source)
    profile = profile_source(client, source)
    assert profile.n_rows == ROWS
    report = train_and_score(client, source, profile, "sgd", seed=0, params={"epochs": 1})
    assert report.n_test + report.n_train == ROWS and report.accuracy > 0.6
    fs.pipe_file("bucket/data/part-9.parquet", b"not parquet at all")
    with pytest.raises(DataError, match=r"cannot read partition 's3://bucket/data/part-9"):
        open_source("s3://bucket/data/", "label", storage_options=s3)


def test_spreading_with_no_worker_up_waits_then_says_so(monkeypatch):
    """All workers restarting at once (a benchmark run saw it): spreading the partitions
    waits for one, and with none it is a timeout naming the workers, not a modulo by
    zero deep in the round-robin."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    from prefect_sklearn_dask.ml.partitioned import engines

    monkeypatch.setattr(engines, "WORKER_WAIT_S", 1.0)
    frame = dd.from_pandas(synthetic_partition(100, 3, seed=0), npartitions=2)
    with (
        LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0") as cluster,
        Client(cluster) as client,
        pytest.raises(TimeoutError, match="workers"),
    ):
        engines.spread(client, frame)
