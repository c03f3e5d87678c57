"""The commands as a user types them: bad input is one line and exit 2; a run predicts."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from tests.conftest import free_port


@pytest.fixture(scope="module")
def good_csv(tmp_path_factory):
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"})
    path = tmp_path_factory.mktemp("data") / "cancer.csv"
    frame.to_csv(path, index=False)
    return path


def write(tmp_path, name: str, frame: pd.DataFrame) -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


BAD_INPUTS = {
    "unknown model": (lambda tmp, csv: ["--models", "rf,xgboost"], "unknown model 'xgboost'"),
    "missing file": (
        lambda tmp, csv: ["--dataset", str(tmp / "nope.csv"), "--target", "y"],
        "not found",
    ),
    "missing target column": (
        lambda tmp, csv: ["--dataset", str(csv), "--target", "nope"],
        "not in",
    ),
    "one class": (
        lambda tmp, csv: [
            "--dataset",
            write(tmp, "one.csv", pd.DataFrame({"a": range(10), "y": ["x"] * 10})),
            "--target",
            "y",
        ],
        "one class",
    ),
    "empty data": (
        lambda tmp, csv: [
            "--dataset",
            write(tmp, "e.csv", pd.DataFrame({"a": [], "y": []})),
            "--target",
            "y",
        ],
        "no rows",
    ),
    "unreachable address": (
        lambda tmp, csv: ["--address", f"tcp://127.0.0.1:{free_port()}"],
        "cannot reach a Dask scheduler",
    ),
    "malformed address": (lambda tmp, csv: ["--address", "tcp://127.0.0.1"], "malformed"),
    "bad adapt": (lambda tmp, csv: ["--adapt", "8:1"], "--adapt needs 0 <= MIN <= MAX"),
    "adapt not numbers": (lambda tmp, csv: ["--adapt", "many"], "--adapt must be MIN:MAX"),
    "adapt and address": (
        lambda tmp, csv: ["--adapt", "1:2", "--address", "tcp://127.0.0.1:8786"],
        "choose one of --address and --adapt",
    ),
    "missing cluster config": (
        lambda tmp, csv: ["--cluster-config", str(tmp / "nope.yaml")],
        "not found",
    ),
    "upload without dask": (
        lambda tmp, csv: ["--runner", "threads", "--upload-code"],
        "--upload-code needs --runner dask",
    ),
    "tls without address": (
        lambda tmp, csv: ["--tls-ca", str(csv), "--tls-cert", str(csv), "--tls-key", str(csv)],
        "not a PEM CA certificate",
    ),
    "address without dask": (
        lambda tmp, csv: ["--runner", "threads", "--address", "tcp://127.0.0.1:8786"],
        "needs --runner dask",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path, good_csv, case):
    make_args, expected = BAD_INPUTS[case]
    storage = tmp_path / "storage"
    result = run_cli("flows/train.py", *make_args(tmp_path, good_csv), "--storage", str(storage))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr
    assert not storage.exists()


def test_train_on_csv_with_dask_then_predict(run_cli, tmp_path, good_csv):
    storage = tmp_path / "storage"
    result = run_cli(
        "flows/train.py",
        *("--runner", "dask", "--workers", "2", "--dataset", str(good_csv), "--target", "label"),
        *("--models", "rf,logreg,nb", "--cv", "3", "--storage", str(storage), "--json"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert sorted(r["model"] for r in summary["rows"]) == ["logreg", "nb", "rf"]
    assert summary["flow_run_url"].startswith("http://127.0.0.1:")
    assert "[3/3]" in result.stderr

    features = pd.read_csv(good_csv).drop(columns=["label"]).head(25)
    new = tmp_path / "new.csv"
    features.to_csv(new, index=False)
    out = tmp_path / "pred.csv"
    predicted = run_cli(
        "flows/predict.py", "--model", str(storage), "--data", str(new), "--out", str(out)
    )
    assert predicted.returncode == 0, predicted.stderr
    labels = pd.read_csv(out)["prediction"]
    assert len(labels) == 25 and set(labels) <= {0, 1}

    record = summary["model"]["record_path"]
    with open(record, "ab") as handle:
        handle.write(b"tampered")
    refused = run_cli("flows/predict.py", "--model", str(storage), "--data", str(new))
    assert refused.returncode == 2
    assert "sha256" in refused.stderr and "Traceback" not in refused.stderr


def test_help_lists_runners_and_models(run_cli):
    result = run_cli("flows/train.py", "--help")
    assert result.returncode == 0
    assert "sequential" in result.stdout and "hgb" in result.stdout


def test_server_start_reports_a_busy_port(run_cli):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("flows/server.py", "start", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: port") and "in use" in result.stderr


def test_sqlite_has_json1():
    from flows.server import check_sqlite_json1

    check_sqlite_json1()  # raises a UserError with the fix where JSON1 is missing
