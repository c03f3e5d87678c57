"""A Prefect server for remote workers: bound to 0.0.0.0, authenticated, over https.

The server binds 0.0.0.0 as a user's would, but every request here goes to 127.0.0.1.
Certificates come from tests/certs.py; the auth string is the one the server generated.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.server import auth, tls
from prefect_sklearn_dask.server.access import require_api_access
from tests.certs import make_tls
from tests.conftest import free_port, run_script
from tests.dask_procs import dask_cluster
from tests.records import wait_for_task_runs

CLIENT_KEYS = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "PREFECT_API_SSL_CERT_FILE")
MODELS = ["nb", "logreg"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_KEYS}
    env.pop(auth.SERVER_ENV, None)
    return {**env, "PREFECT_HOME": str(home), **extra}


@pytest.fixture(scope="module")
def secure_server(tmp_path_factory):
    """``flows/server.py start --host 0.0.0.0 --tls-cert --tls-key``, no auth string given."""
    tmp = tmp_path_factory.mktemp("secure")
    certs = make_tls(tmp / "certs")
    home = tmp / "server-home"
    env = _env(home)
    port = free_port()
    started = run_script(
        "flows/server.py",
        *("start", "--host", "0.0.0.0", "--port", str(port)),
        *("--tls-cert", certs["cert"], "--tls-key", certs["key"]),
        env=env,
        cwd=tmp,
    )
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield SimpleNamespace(
            url=f"https://127.0.0.1:{port}/api",
            ca=certs["ca"],
            secret=(home / auth.AUTH_FILE).read_text().strip(),
            home=home,
            started=started,
            tmp=tmp,
        )
    finally:
        run_script("flows/server.py", "stop", env=env, cwd=tmp, timeout=60)


def test_wide_start_generates_a_private_auth_string_and_serves_https(secure_server):
    path = secure_server.home / auth.AUTH_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secure_server.secret) >= 40
    printed = secure_server.started.stdout + secure_server.started.stderr
    assert secure_server.secret not in printed
    assert f'PREFECT_API_AUTH_STRING="$(cat {path})"' in printed
    assert "https://127.0.0.1:" in secure_server.started.stdout
    assert "with authentication and TLS" in secure_server.started.stderr
    url, ca = secure_server.url, secure_server.ca

    anonymous = httpx.get(f"{url}/admin/version", verify=ca, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    token = httpx.get(
        f"{url}/admin/version",
        verify=ca,
        timeout=10,
        headers={
            "Authorization": "Basic " + base64.b64encode(secure_server.secret.encode()).decode()
        },
    )
    assert token.status_code == 200, token.text
    # unauthenticated health probes stay open (Prefect's rule, for load balancers)
    assert httpx.get(f"{url}/health", verify=ca, timeout=10).status_code == 200


def _client_env(server, tmp: Path, **overrides: str | None) -> dict[str, str]:
    values = {
        "PREFECT_API_URL": server.url,
        "PREFECT_API_AUTH_STRING": server.secret,
        "PREFECT_API_SSL_CERT_FILE": server.ca,
        "TMPDIR": str(tmp),
        **overrides,
    }
    return _env(tmp / "client-home", **{k: v for k, v in values.items() if v is not None})


@pytest.mark.parametrize(
    "case, overrides, expected",
    [
        ("no auth string", {"PREFECT_API_AUTH_STRING": None}, "requires authentication"),
        ("wrong auth string", {"PREFECT_API_AUTH_STRING": "not-the-one"}, "rejected the auth"),
        ("untrusted cert", {"PREFECT_API_SSL_CERT_FILE": None}, "does not trust"),
        ("http to https", {"PREFECT_API_URL": "http"}, "speaks https, not http"),
    ],
)
def test_train_against_the_server_without_what_it_needs_is_one_line(
    secure_server, tmp_path, case, overrides, expected
):
    if overrides.get("PREFECT_API_URL") == "http":
        overrides = {"PREFECT_API_URL": secure_server.url.replace("https:", "http:")}
    env = _client_env(secure_server, tmp_path, **overrides)
    # the default --runner dask would start a LocalCluster: it must not get that far
    result = run_script(
        "flows/train.py", "--dataset", "iris", "--models", "nb", env=env, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert secure_server.secret not in result.stdout + result.stderr


def test_serve_checks_the_same_way(secure_server, tmp_path):
    env = _client_env(secure_server, tmp_path, PREFECT_API_AUTH_STRING=None)
    result = run_script("flows/serve.py", env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "requires authentication" in lines[0], result.stderr


def _read_back(server, flow_run_id: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, FlowRunFilter, LogFilter
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_SSL_CERT_FILE,
        PREFECT_API_URL,
        temporary_settings,
    )

    async def read():
        async with get_client() as client:
            runs = FlowRunFilter(id={"any_": [flow_run_id]})
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id={"any_": [flow_run_id]}))
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(), flow_run_filter=runs
            )
            flow_run = await client.read_flow_run(flow_run_id)
        return logs, arts, flow_run

    settings = {
        PREFECT_API_URL: server.url,
        PREFECT_API_AUTH_STRING: server.secret,
        PREFECT_API_SSL_CERT_FILE: server.ca,
    }
    with temporary_settings(settings):
        task_runs = wait_for_task_runs(flow_run_id, len(MODELS), timeout=60)
        logs, arts, flow_run = asyncio.run(read())
    return task_runs, logs, arts, flow_run


def _all_text(folder: Path) -> str:
    return "".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


def test_a_run_on_hand_started_workers_reports_to_the_secure_server(
    secure_server, tmp_path, monkeypatch
):
    """Workers start with no Prefect setting at all; the flow hands them URL, auth and CA."""
    flow_tmp, worker_tmp = tmp_path / "flow-tmp", tmp_path / "worker-tmp"
    flow_tmp.mkdir()
    worker_tmp.mkdir()
    # where each side keeps its copy of the CA: apart, as on two machines
    monkeypatch.setenv("TMPDIR", str(worker_tmp))
    env = _client_env(secure_server, flow_tmp)
    with dask_cluster(tmp_path, n_workers=1) as address:
        result = run_script(
            "flows/train.py",
            *("--address", address, "--dataset", "iris", "--models", ",".join(MODELS)),
            *("--storage", str(tmp_path / "storage"), "--json"),
            env=env,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    task_runs, logs, arts, flow_run = _read_back(secure_server, summary["flow_run_id"])

    assert sorted(t.name for t in task_runs) == sorted(f"train-{m}" for m in MODELS)
    assert all(t.state.is_completed() for t in task_runs)
    task_logs = {log.message.split(" on ")[0] for log in logs if log.task_run_id}
    assert {f"training {m}" for m in MODELS} <= task_logs, task_logs
    ca = Path(secure_server.ca).read_bytes()
    assert [p.read_bytes() for p in worker_tmp.glob("prefect-api-ca-*.pem")] == [ca]

    secret = secure_server.secret
    stored = [log.message for log in logs] + [str(a.data) for a in arts]
    stored += [t.state.message or "" for t in task_runs] + [flow_run.state.message or ""]
    assert not [text for text in stored if secret in text]
    assert secret not in result.stdout + result.stderr
    assert secret not in _all_text(tmp_path)  # worker and scheduler logs, model, report
    assert secret not in (secure_server.home / "server.log").read_text(errors="replace")


def test_wide_start_with_an_empty_auth_string_refuses(tmp_path):
    env = _env(tmp_path / "home", **{auth.SERVER_ENV: ""})
    result = run_script(
        "flows/server.py",
        *("start", "--host", "0.0.0.0", "--port", str(free_port())),
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert auth.INSECURE_FLAG in lines[0] and "unset it" in lines[0]
    assert not (tmp_path / "home" / "server.pid").exists()


def test_auth_string_choice(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.SERVER_ENV, raising=False)
    assert auth.server_auth_string("127.0.0.1", tmp_path) is None  # loopback: as before
    assert auth.server_auth_string("0.0.0.0", tmp_path, insecure_no_auth=True) is None
    generated = auth.server_auth_string("0.0.0.0", tmp_path)
    assert generated and auth.server_auth_string("10.0.0.5", tmp_path) == generated  # reused
    monkeypatch.setenv(auth.SERVER_ENV, "from-the-environment")
    assert auth.server_auth_string("0.0.0.0", tmp_path) == "from-the-environment"
    monkeypatch.delenv(auth.SERVER_ENV)
    auth.auth_file(tmp_path).chmod(0o644)
    with pytest.raises(UserError, match="readable by other users"):
        auth.server_auth_string("0.0.0.0", tmp_path)


def test_tls_flags_are_checked_before_anything_starts(tmp_path):
    ours, other = make_tls(tmp_path / "a"), make_tls(tmp_path / "b")
    with pytest.raises(UserError, match="go together"):
        tls.check_pair(ours["cert"], None)
    with pytest.raises(UserError, match="not a PEM certificate and its private key"):
        tls.check_pair(ours["cert"], other["key"])
    assert tls.check_pair(ours["cert"], ours["key"])


def test_an_api_that_does_not_answer_is_one_line():
    with pytest.raises(UserError, match="does not answer; start that server"):
        require_api_access(f"https://127.0.0.1:{free_port()}/api")
