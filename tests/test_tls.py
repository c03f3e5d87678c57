"""A real TLS scheduler and worker on 127.0.0.1 with certificates made for the test."""

from __future__ import annotations

import json
import time

import pytest

from tests.certs import make_tls
from tests.dask_procs import dask_cluster


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_scheduler(tmp_path_factory, tls_files):
    with dask_cluster(tmp_path_factory.mktemp("tls-cluster"), tls=tls_files) as address:
        yield address


def tls_args(files: dict[str, str]) -> list[str]:
    return ["--tls-ca", files["ca"], "--tls-cert", files["cert"], "--tls-key", files["key"]]


def test_flow_runs_on_a_tls_scheduler(run_cli, tls_scheduler, tls_files, tmp_path):
    assert tls_scheduler.startswith("tls://127.0.0.1:")
    result = run_cli(
        "flows/train.py",
        *("--address", tls_scheduler, *tls_args(tls_files), "--dataset", "iris"),
        *("--models", "nb,logreg", "--storage", str(tmp_path / "s"), "--json"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    statuses = {r["model"]: r["status"] for r in summary["rows"]}
    assert statuses == {"logreg": "ok", "nb": "ok"}, summary["rows"]


def _bad_cases(tmp_path, files, scheduler):
    other = make_tls(tmp_path / "other", name="other")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    return {
        "missing file": (
            ["--address", scheduler, *tls_args({**files, "key": str(tmp_path / "nope.pem")})],
            "not found",
        ),
        "not a certificate": (
            ["--address", scheduler, *tls_args({**files, "ca": str(tmp_path / "junk.pem")})],
            "not a PEM CA certificate",
        ),
        "key of another cert": (
            ["--address", scheduler, *tls_args({**files, "key": other["key"]})],
            "not a matching PEM certificate",
        ),
        "untrusted CA": (
            ["--address", scheduler, *tls_args(other)],
            "cannot reach a Dask scheduler",
        ),
        "TLS scheduler without files": (["--address", scheduler], "pass --tls-ca"),
        "only one file": (["--address", scheduler, "--tls-ca", files["ca"]], "missing --tls-cert"),
    }


CASES = [
    "missing file",
    "not a certificate",
    "key of another cert",
    "untrusted CA",
    "TLS scheduler without files",
    "only one file",
]


@pytest.mark.parametrize("case", CASES)
def test_wrong_tls_input_is_one_line_exit_2_fast(run_cli, tls_scheduler, tls_files, tmp_path, case):
    args, expected = _bad_cases(tmp_path, tls_files, tls_scheduler)[case]
    # "Fast" is next to what starting the CLI costs right now: ~7 s on a quiet 2-core
    # machine, 15-25 s while parallel test workers load it (the check is against hanging on
    # a TLS connect, Dask's timeout is 30 s). The reference stops at its argument check.
    started = time.monotonic()
    reference = run_cli("flows/train.py", "--dataset", "iris", "--models", "nope")
    budget = max(15.0, time.monotonic() - started + 10)
    assert reference.returncode == 2, reference.stderr[-2000:]
    started = time.monotonic()
    result = run_cli("flows/train.py", *args, "--dataset", "iris", "--models", "nb")
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert elapsed < budget, f"{case} took {elapsed:.1f} s (budget {budget:.1f} s)"
