"""A normal run prints no WARNING lines: the workers' profiles are sized, not warned about."""

from __future__ import annotations

# Shutdown lines that depend on how loaded the machine is, not on the run: the nanny
# gives a closing worker process 4 s before killing it, and Prefect's event worker says
# when it is still sending at exit. Seen on the shared 2-core machine only under load.
LOAD_DEPENDENT = (
    "Worker process still alive after",  # distributed.nanny
    "Still processing items",  # prefect EventsWorker
)


def warning_lines(output: str) -> list[str]:
    return [
        line
        for line in output.splitlines()
        if "WARNING" in line and not any(known in line for known in LOAD_DEPENDENT)
    ]


def test_dask_run_with_performance_report_prints_no_warning(run_cli, tmp_path):
    result = run_cli(
        "flows/train.py",
        *("--runner", "dask", "--new-cluster", "--workers", "2", "--dataset", "iris"),
        *("--models", "nb,logreg", "--storage", str(tmp_path / "store"), "--no-cache"),
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "dask report" in output  # the report, whose worker profiles used to warn
    assert "Sizeof calculation" not in output
    assert warning_lines(output) == []


def _deep(levels: int, seconds: float) -> int:
    """A stack as deep as a Prefect task fitting a pipeline, held while the profiler samples."""
    if levels:
        return _deep(levels - 1, seconds) + 1
    import time

    time.sleep(seconds)
    return 0


def _sizeof_warnings(register: bool, capfd) -> list[str]:
    """The worker's sizeof warnings (its stderr is this process's, captured at the fd)."""
    from distributed import Client, LocalCluster

    from prefect_sklearn_dask.bridge import profile_depth

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=":0", host="127.0.0.1"
        ) as cluster,
        Client(cluster) as client,
    ):
        if register:
            profile_depth.register(client)
        assert client.submit(_deep, 110, 1.5, pure=False).result() == 110
        client.profile()  # what the performance report asks each worker for
    return [line for line in capfd.readouterr().err.splitlines() if "Sizeof calculation" in line]


def test_deep_worker_profiles_are_sized_once_the_plugin_is_registered(capfd):
    assert _sizeof_warnings(False, capfd)  # the cause, provoked: a default worker warns
    assert _sizeof_warnings(True, capfd) == []
