"""Training through cluster/configs/slurm.yaml on a real SLURM: the Dask workers are sbatch jobs.

`.ci/slurm.sh` starts a single-node SLURM (Debian's slurm-wlm + munge) with a partition named
`normal`, the shipped config's default queue. Elsewhere the test skips, saying why; under
CI=true, where `.ci/run` installs SLURM, a missing one is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
import yaml

from tests.conftest import ROOT

CONFIG = ROOT / "cluster" / "configs" / "slurm.yaml"


def _slurm_missing() -> str | None:
    """Why no SLURM partition can take the config's jobs here, or None."""
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH (.ci/slurm.sh installs a single-node SLURM as root)"
    queue = yaml.safe_load(CONFIG.read_text())["cluster_kwargs"]["queue"]
    state = subprocess.run(
        ["sinfo", "-h", "-p", queue, "-o", "%a"], capture_output=True, text=True, timeout=30
    )
    if state.returncode or state.stdout.split() != ["up"]:
        return f"SLURM partition {queue!r} is not up: {(state.stderr or state.stdout).strip()!r}"
    return None


@pytest.fixture
def slurm():
    reason = _slurm_missing()
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"CI installs SLURM (.ci/slurm.sh), yet {reason}")
    if reason:
        pytest.skip(reason)


def _job(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (completed jobs stay listed for MinJobAge, 300 s)."""
    shown = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=30
    ).stdout
    return dict(field.split("=", 1) for field in shown.split() if "=" in field)


@pytest.mark.slow
def test_train_through_the_slurm_config_runs_its_workers_as_slurm_jobs(slurm, run_cli, tmp_path):
    """The shipped config, unchanged but for a job name of its own, a log folder and a
    loopback scheduler (single node): the fits run on workers that are sbatch jobs."""
    config = yaml.safe_load(CONFIG.read_text())
    job_name = f"train-flow-{uuid.uuid4().hex[:8]}"
    logs = tmp_path / "slurm-logs"
    config["cluster_kwargs"] |= {
        "job_name": job_name,
        "log_directory": str(logs),
        "scheduler_options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
    }
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(config))

    result = run_cli(
        "flows/train.py",
        *("--runner", "dask", "--cluster-config", str(path)),
        *("--dataset", "iris", "--models", "nb,logreg", "--no-performance-report", "--json"),
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert {r["model"]: r["status"] for r in summary["rows"]} == {"nb": "ok", "logreg": "ok"}

    # each job's stderr file, <job name>-<job id>.err, holds the log of the Dask worker it
    # ran: the fits' own task-run lines prove they ran inside SLURM jobs
    outputs = sorted(logs.glob(f"{job_name}-*.err"))
    assert outputs, f"no job output in {logs}: {list(logs.iterdir()) if logs.exists() else []}"
    job_logs = "".join(p.read_text(errors="replace") for p in outputs)
    for model in ("nb", "logreg"):
        assert f"trained {model}: f1_macro=" in job_logs, job_logs[-3000:]
    job_ids = [p.stem.rsplit("-", 1)[1] for p in outputs]
    jobs = {job_id: _job(job_id) for job_id in job_ids}
    assert any(j.get("JobName") == job_name for j in jobs.values()), jobs
    assert {j.get("Partition") for j in jobs.values()} == {config["cluster_kwargs"]["queue"]}
    assert not [j for j in jobs.values() if j.get("JobState") in ("PENDING", "RUNNING")], (
        "the flow left SLURM jobs behind",
        jobs,
    )
