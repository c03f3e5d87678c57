"""The commands as a user types them: bad input is one line and exit 2; a run predicts.

Every bad input the project knows, for every command (train, serve, server, predict),
is one case of ``BAD_INPUTS``.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

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


def tampered_model(tmp: Path, csv: Path) -> str:
    """A saved model whose file changed after saving (its sha256 no longer matches)."""
    from sklearn.naive_bayes import GaussianNB

    from prefect_sklearn_dask.flow.model_store import save_model

    frame = pd.read_csv(csv)
    model = GaussianNB().fit(frame.drop(columns=["label"]), frame["label"])
    stored = save_model(model, {"model": "nb"}, tmp / "models", "run")
    with open(stored.record_path, "ab") as handle:
        handle.write(b"tampered")
    return str(stored.manifest_path)


def dates_parquet(tmp: Path) -> str:
    path = tmp / "dates.parquet"
    when = pd.date_range("2024-01-01", periods=10)
    pd.DataFrame({"when": when, "a": range(10), "y": [0, 1] * 5}).to_parquet(path)
    return str(path)


def garbage(tmp: Path, name: str) -> str:
    path = tmp / name
    path.write_bytes(b"\x00\x01 this is not a parquet file")
    return str(path)


def dataset(path: str, target: str = "y") -> list[str]:
    return ["--dataset", path, "--target", target]


TRAIN, SERVE, SERVER, PREDICT = (
    "flows/train.py",
    "flows/serve.py",
    "flows/server.py",
    "flows/predict.py",
)
# case -> (script, args from (tmp, csv, busy_port), expected text of the one error line)
BAD_INPUTS = {
    "unknown model": (TRAIN, lambda t, c, p: ["--models", "rf,xgboost"], "unknown model 'xgboost'"),
    "missing file": (TRAIN, lambda t, c, p: dataset(str(t / "nope.csv")), "not found"),
    "unreadable file": (TRAIN, lambda t, c, p: dataset(garbage(t, "x.parquet")), "cannot read"),
    "missing target column": (TRAIN, lambda t, c, p: dataset(str(c), "nope"), "not in"),
    "one class": (
        TRAIN,
        lambda t, c, p: dataset(
            write(t, "one.csv", pd.DataFrame({"a": range(10), "y": ["x"] * 10}))
        ),
        "one class",
    ),
    "empty data": (
        TRAIN,
        lambda t, c, p: dataset(write(t, "e.csv", pd.DataFrame({"a": [], "y": []}))),
        "no rows",
    ),
    "all-NaN column": (
        TRAIN,
        lambda t, c, p: dataset(
            write(t, "nan.csv", pd.DataFrame({"a": [None] * 10, "b": range(10), "y": [0, 1] * 5}))
        ),
        "entirely empty",
    ),
    "features it cannot encode": (TRAIN, lambda t, c, p: dataset(dates_parquet(t)), "dates/times"),
    "unreachable address": (
        TRAIN,
        lambda t, c, p: ["--address", f"tcp://127.0.0.1:{free_port()}"],
        "cannot reach a Dask scheduler",
    ),
    "malformed address": (TRAIN, lambda t, c, p: ["--address", "tcp://127.0.0.1"], "malformed"),
    "bad adapt": (TRAIN, lambda t, c, p: ["--adapt", "8:1"], "--adapt needs 0 <= MIN <= MAX"),
    "adapt not numbers": (TRAIN, lambda t, c, p: ["--adapt", "many"], "--adapt must be MIN:MAX"),
    "adapt and address": (
        TRAIN,
        lambda t, c, p: ["--adapt", "1:2", "--address", "tcp://127.0.0.1:8786"],
        "choose one of --address and --adapt",
    ),
    "missing cluster config": (
        TRAIN,
        lambda t, c, p: ["--cluster-config", str(t / "nope.yaml")],
        "not found",
    ),
    "upload without dask": (
        TRAIN,
        lambda t, c, p: ["--runner", "threads", "--upload-code"],
        "--upload-code needs --runner dask",
    ),
    "bad TLS files": (
        TRAIN,
        lambda t, c, p: [
            *("--address", f"tls://127.0.0.1:{free_port()}"),
            *("--tls-ca", str(c), "--tls-cert", str(c), "--tls-key", str(c)),
        ],
        "not a PEM CA certificate",
    ),
    "address without dask": (
        TRAIN,
        lambda t, c, p: ["--runner", "threads", "--address", "tcp://127.0.0.1:8786"],
        "needs --runner dask",
    ),
    "bad cron": (SERVE, lambda t, c, p: ["--cron", "61 * * * *"], "bad --cron"),
    "bad rrule": (SERVE, lambda t, c, p: ["--rrule", "FREQ=SOMETIMES"], "bad --rrule"),
    "bad interval": (
        SERVE,
        lambda t, c, p: ["--interval", "-5"],
        "--interval must be a positive number",
    ),
    "port in use": (SERVER, lambda t, c, p: ["start", "--port", str(p)], "port {p} on"),
    "model sha256 mismatch": (
        PREDICT,
        lambda t, c, p: ["--model", tampered_model(t, c), "--data", str(c)],
        "does not match its recorded sha256",
    ),
}


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(run_cli, tmp_path, good_csv, case):
    """Every bad input of every command: one ``error:`` line, exit 2, nothing written."""
    script, make_args, expected = BAD_INPUTS[case]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = make_args(tmp_path, good_csv, port)
        if script == TRAIN:
            args += ["--storage", str(tmp_path / "storage")]
        before = files_under(tmp_path)
        result = run_cli(script, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected.format(p=port) in lines[0]
    assert "Traceback" not in result.stderr
    assert files_under(tmp_path) == before  # nothing written (no storage, no output file)


def test_train_on_csv_with_dask_then_predict(run_cli, tmp_path, good_csv):
    storage = tmp_path / "storage"
    result = run_cli(
        "flows/train.py",
        *("--runner", "dask", "--workers", "2", "--dataset", str(good_csv), "--target", "label"),
        *("--models", "rf,logreg,nb", "--cv", "3", "--storage", str(storage), "--json"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    statuses = {r["model"]: r["status"] for r in summary["rows"]}
    assert statuses == {"logreg": "ok", "nb": "ok", "rf": "ok"}, summary["rows"]
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


class WithoutJson1:
    """A real SQLite connection on which ``json_each`` does not exist, as in a SQLite
    built without JSON1: the query reaches SQLite under a name it does not know."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, *args):
        return self._connection.execute(sql.replace("json_each", "json_each_absent"), *args)

    def __getattr__(self, name: str):
        return getattr(self._connection, name)


def test_sqlite_has_json1(monkeypatch, tmp_path):
    """This Python's SQLite has JSON1 (Prefect's schema needs it); where it lacks it, the
    server is not started and the error names the fix."""
    from prefect_sklearn_dask.ml.errors import UserError
    from prefect_sklearn_dask.server.process import (
        check_sqlite_json1,
        port_in_use,
        start_server,
        stop_server,
    )

    rows = sqlite3.connect(":memory:").execute("SELECT value FROM json_each('[1, 2]')")
    assert rows.fetchall() == [(1,), (2,)]
    assert check_sqlite_json1() is None

    connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: WithoutJson1(connect(*a, **k)))
    monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL", raising=False)
    with pytest.raises(UserError) as raised:
        check_sqlite_json1()
    message = str(raised.value)
    assert f"this Python's SQLite ({sqlite3.sqlite_version}) lacks the JSON1 extension" in message
    assert "PREFECT_API_DATABASE_CONNECTION_URL" in message
    port = free_port()
    try:
        with pytest.raises(UserError, match="lacks the JSON1 extension"):
            start_server(port=port, home=tmp_path)
        assert not (tmp_path / "server.pid").exists() and not port_in_use("127.0.0.1", port)
    finally:
        stop_server(tmp_path)  # only if the check let a server start


def test_json_on_the_thread_pool_is_json_alone(run_cli, tmp_path):
    """Tasks on Prefect's thread pool print nothing to stdout: ``--json`` is the summary
    alone (a ``print`` in a task with ``log_prints`` reached stdout in 2 of 4 runs)."""
    for _ in range(2):  # the default job, as the benchmark's cmd-train-default-threads runs it
        result = run_cli(
            "flows/train.py",
            *("--runner", "threads", "--workers", "2", "--no-cache", "--storage", str(tmp_path)),
            "--json",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.lstrip().startswith("{"), result.stdout[:300]
        assert len(json.loads(result.stdout)["rows"]) == 8


def test_the_commands_import_with_the_collector_paused_then_on_again():
    """``fast_imports`` pauses CPython's cyclic collector for the command's imports and
    freezes what they built; a Dask worker spawned from ``flows/train.py`` imports the
    same module, so the collector must be back on once the import returns."""
    import subprocess
    import sys

    probe = (
        "import gc, prefect_sklearn_dask.commands.train; "
        "print(gc.isenabled(), gc.get_freeze_count() > 100_000)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
