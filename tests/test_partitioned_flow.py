"""Partitioned data through the commands as a user types them: train.py trains xgb and
sgd on a directory of Parquet partitions (one task run each, recorded on the server),
predict.py writes Parquet partitions, and bad input is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from prefect_sklearn_dask.ml.partitioned.synthetic import write_synthetic

pytestmark = pytest.mark.timeout(400)
ROWS = 6000


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parts")
    write_synthetic(folder, rows=ROWS, partitions=4, features=8, seed=2)
    return folder


def task_run_names(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sorted(run.name for run in runs)


def test_train_and_predict_on_partitions(run_cli, local_cluster, parts, tmp_path):
    address = local_cluster.scheduler_address
    storage = tmp_path / "storage"
    trained = run_cli(
        "flows/train.py",
        *("--dataset", str(parts), "--target", "label", "--models", "xgb,sgd"),
        *("--address", address, "--storage", str(storage), "--json"),
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    summary = json.loads(trained.stdout)
    assert summary["dataset"]["n_rows"] == ROWS and summary["dataset"]["partitions"] == 4
    rows = {row["model"]: row for row in summary["rows"]}
    assert {rows[m]["status"] for m in ("xgb", "sgd")} == {"ok"}
    for row in rows.values():
        assert row["n_train"] + row["n_test"] == ROWS and row["accuracy"] > 0.7
        assert row["peak_worker_mb"] > 0
    assert task_run_names(summary["flow_run_id"]) == ["train-sgd", "train-xgb"]
    assert Path(summary["comparison_chart"]["path"]).is_file()
    # the command the run prints predicts partitions into a folder, not one CSV
    assert "--data YOUR_PARTITIONS/ --out PREDICTIONS/" in summary["predict_command"]

    out = tmp_path / "predictions"
    predicted = run_cli(
        "flows/predict.py",
        *("--model", summary["model"]["manifest_path"], "--data", str(parts / "*.parquet")),
        *("--out", str(out), "--address", address),
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "rows/s" in predicted.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"part-{i:05d}.parquet" for i in range(4)]
    written = pd.read_parquet(out)
    assert written["row_id"].tolist() == list(range(ROWS))
    assert set(written["prediction"]) <= {0, 1}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ("--models", "rf,xgb"),
            "rf train on in-memory data only; .* use --models xgb,sgd",
        ),
        (("--models", "xgb", "--runner", "threads"), "use --runner dask"),
        (("--models", "xgb", "--search", "grid"), "--search runs on in-memory data only"),
        (("--models", "xgb", "--worker-memory", "lots"), "--worker-memory takes a size"),
        (
            ("--models", "xgb", "--worker-memory", "1GB", "--address", "tcp://127.0.0.1:1"),
            "--worker-memory sizes the workers of a new local cluster",
        ),
        (("--models", "sgd", "CORRUPT"), r"cannot read partition '.*part-00002\.parquet'"),
    ],
)
def test_bad_partitioned_input_is_refused_before_anything_starts(parts, tmp_path, args, said):
    """The checks ``flows/train.py`` makes before any server, cluster or file (its exit 2
    path for every UserError is tests/test_cli.py's)."""
    import shutil

    from prefect_sklearn_dask.commands.train import parse_args, preflight
    from prefect_sklearn_dask.ml.errors import UserError

    folder = tmp_path / "copy"
    shutil.copytree(parts, folder)
    if "CORRUPT" in args:
        (folder / "part-00002.parquet").write_bytes(b"PAR1 truncated")
        args = tuple(a for a in args if a != "CORRUPT")
    argv = ["--dataset", str(folder), "--target", "label", *args]
    with pytest.raises(UserError, match=said) as caught:
        preflight(parse_args(argv))
    assert "\n" not in str(caught.value)


def test_a_file_only_the_cluster_reads_wrong_is_exit_2(run_cli, local_cluster, tmp_path):
    """CSV has no statistics: one class is found by the run's pass on the cluster, and the
    command still ends in one error line and exit 2, before any model trains."""
    from prefect_sklearn_dask.ml.partitioned.synthetic import synthetic_partition

    for name in ("a", "b"):
        synthetic_partition(30, 3, seed=0).assign(label=1).to_csv(tmp_path / f"{name}.csv")
    done = run_cli(
        "flows/train.py",
        *("--dataset", str(tmp_path / "*.csv"), "--target", "label", "--models", "sgd"),
        *("--address", local_cluster.scheduler_address, "--storage", str(tmp_path / "s")),
    )
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: target column 'label' has one class (1)"), last
    assert "train-sgd" not in done.stderr


def test_worker_memory_sizes_a_new_local_cluster():
    from prefect_sklearn_dask.bridge.runners import check_cluster_options
    from prefect_sklearn_dask.cluster.local import local_cluster_kwargs
    from prefect_sklearn_dask.ml.errors import UserError

    assert local_cluster_kwargs(2, worker_memory="1500MB")["memory_limit"] == "1500MB"
    assert "memory_limit" not in local_cluster_kwargs(2)
    with pytest.raises(UserError, match="new local cluster"):
        check_cluster_options(None, None, "cluster.yaml", worker_memory="1GB")
