"""YAML cluster configs: validated at the edge; HPC scripts render; a LocalCluster one runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_sklearn_dask.cluster.config import check_kwargs, load_config, resolve_class, validate
from prefect_sklearn_dask.ml.errors import UserError
from tests.conftest import ROOT

CONFIGS = ROOT / "cluster" / "configs"
LOOPBACK = {"scheduler_options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}}


@pytest.mark.parametrize(
    "name, cls",
    [
        ("slurm.yaml", "dask_jobqueue.SLURMCluster"),
        ("pbs.yaml", "dask_jobqueue.PBSCluster"),
        ("kubernetes.yaml", "dask_kubernetes.operator.KubeCluster"),
    ],
)
def test_shipped_configs_are_well_formed(name, cls):
    config = load_config(CONFIGS / name)
    assert config.cluster_class == cls
    assert config.adapt_kwargs and config.adapt_kwargs["maximum"] >= 1
    assert "asynchronous" not in config.cluster_kwargs


def test_slurm_config_renders_the_expected_job_script():
    pytest.importorskip("dask_jobqueue")
    config = validate(CONFIGS / "slurm.yaml")
    cls = resolve_class(config)
    with cls(**config.cluster_kwargs, **LOOPBACK) as cluster:
        script = cluster.job_script()
    assert script.startswith("#!/usr/bin/env bash")
    for line in ("#SBATCH -J train-flow", "#SBATCH -p normal", "#SBATCH -t 01:00:00"):
        assert line in script, script
    assert "#SBATCH --mem=" in script and "source ~/.bashrc" in script
    assert "distributed.cli.dask_worker tcp://127.0.0.1:" in script
    assert "--nthreads 1" in script and "--lifetime 55m" in script


def test_pbs_config_renders_the_expected_job_script():
    pytest.importorskip("dask_jobqueue")
    config = validate(CONFIGS / "pbs.yaml")
    with resolve_class(config)(**config.cluster_kwargs, **LOOPBACK) as cluster:
        script = cluster.job_script()
    assert "#PBS -q workq" in script and "#PBS -l select=1:ncpus=1:mem=4GB" in script
    assert "#PBS -l walltime=01:00:00" in script
    assert "distributed.cli.dask_worker tcp://127.0.0.1:" in script


def test_kubernetes_config_resolves_when_installed():
    pytest.importorskip("dask_kubernetes")
    config = validate(CONFIGS / "kubernetes.yaml")
    assert resolve_class(config).__name__ == "KubeCluster"


def test_a_missing_optional_package_names_the_extra(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text("cluster_class: dask_nonexistent_pkg.FooCluster\n")
    with pytest.raises(UserError, match="needs dask_nonexistent_pkg"):
        validate(path)
    try:
        import dask_kubernetes  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"pip install '\.\[kubernetes\]'"):
            validate(CONFIGS / "kubernetes.yaml")


BAD = {
    "not yaml": ("cluster_class: [unclosed\n", "not valid YAML at line"),
    "a list": ("- a\n- b\n", "expected a mapping"),
    "unknown key": (
        "cluster_class: distributed.LocalCluster\nworkers: 3\n",
        "unknown key(s) workers",
    ),
    "no class": ("cluster_kwargs: {n_workers: 1}\n", "cluster_class must be an import path"),
    "kwargs not a mapping": (
        "cluster_class: distributed.LocalCluster\ncluster_kwargs: [1, 2]\n",
        "cluster_kwargs must be a mapping",
    ),
    "bad adapt": (
        "cluster_class: distributed.LocalCluster\nadapt: {minimum: 4, maximum: 2}\n",
        "adapt needs integers",
    ),
    "no such class": ("cluster_class: distributed.NoSuchCluster\n", "has no class 'NoSuchCluster'"),
    "unknown argument": (
        "cluster_class: distributed.deploy.spec.SpecCluster\ncluster_kwargs: {n_wrkers: 2}\n",
        "takes no argument(s) n_wrkers",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_configs_are_refused_with_the_reason(tmp_path, case):
    text, expected = BAD[case]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        config = load_config(path)
        check_kwargs(config, resolve_class(config))
    assert expected in str(info.value) and str(path) in str(info.value)


def test_a_local_cluster_config_runs_the_flow(prefect_api, tmp_path):
    from prefect_sklearn_dask.flow.train_flow import train_flow

    path = tmp_path / "local.yaml"
    path.write_text(
        "cluster_class: distributed.LocalCluster\n"
        "cluster_kwargs: {n_workers: 1, threads_per_worker: 1, host: 127.0.0.1, "
        "dashboard_address: '127.0.0.1:0'}\n"
    )
    summary = train_flow(
        dataset="iris",
        models=["nb", "logreg"],
        runner="dask",
        cluster_config=str(path),
        storage=str(tmp_path / "s"),
    )
    assert sorted(r["model"] for r in summary["rows"]) == ["logreg", "nb"]
    assert Path(summary["performance_report"]).is_file()
    assert summary["dask_cluster"] == f"cluster config {path}"


def test_bad_config_on_the_command_line_is_one_line_exit_2(run_cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("cluster_class: [unclosed\n")
    result = run_cli("flows/train.py", "--cluster-config", str(path), "--dataset", "iris")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not valid YAML" in lines[0], result.stderr
