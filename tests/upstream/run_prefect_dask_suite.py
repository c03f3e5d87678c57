"""Run prefect-dask's own task-runner tests against the project's FastDaskTaskRunner.

The sdist of the installed prefect-dask on the package index ships ``tests/``; this
downloads it (nothing is copied into the repository), makes ``DaskTaskRunner`` in
upstream's ``test_task_runners.py`` the project's ``FastDaskTaskRunner`` and runs it
with pytest, upstream's conftest (Prefect's test harness: a temporary server) and
upstream's pytest settings. The tests where the project's runner differs on purpose
are deselected by name in ``DIFFERENCES``, each with its reason (the README lists the
same); one that needs more cores than this machine has (``MIN_CORES``) is deselected
only here. Each test is bounded by pytest-timeout, the whole run by ``SUITE_TIMEOUT_S``
(``--suite-timeout S`` sets another bound: ``.ci/run`` runs it at a low CPU priority
beside the main suite, where it gets a few per cent of the CPU).
Exit status: pytest's; 1 with one ``error:`` line when the sdist cannot be had or the
run overstays its bound.

    .venv/bin/python tests/upstream/run_prefect_dask_suite.py [--stock]
        [--suite-timeout S] [pytest args...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import psutil

UPSTREAM_IMPORT = "from prefect_dask import DaskTaskRunner\n"
PROJECT_IMPORT = (
    "from prefect_sklearn_dask.bridge.fast_dask import FastDaskTaskRunner as DaskTaskRunner\n"
)

# Upstream test (node id prefix under the test file) -> why it is not run against the
# project's runner (only on machines below its MIN_CORES, where it has one). Keep
# README.md's list ("Use the fast runner in your own flows") the same.
DIFFERENCES: dict[str, str] = {
    "TestDaskTaskRunner::test_as_completed_yields_correct_order": (
        "needs 3 worker threads at once (tasks of 10, 5 and 1 s must finish in reverse "
        "order); a 2-core machine's LocalCluster has 2, and stock DaskTaskRunner fails it "
        "the same way there ([5, 1, 10]): not a difference of the runner"
    ),
}
# Deselected only where Dask sizes upstream's LocalCluster below this many threads in all
# (dask.system.CPU_COUNT, what LocalCluster sizes itself by: cores, affinity, cgroup
# quota); run everywhere else.
MIN_CORES: dict[str, int] = {"TestDaskTaskRunner::test_as_completed_yields_correct_order": 3}
# A hung test stops at TEST_TIMEOUT_S; anything else that hangs (a fixture, teardown,
# a process that never exits) at SUITE_TIMEOUT_S.
TEST_TIMEOUT_S = 120
SUITE_TIMEOUT_S = 900

# pyproject.toml of prefect-dask: [tool.pytest.ini_options]; pytest-env's setting as env.
PYTEST_INI = f"""\
[pytest]
asyncio_default_fixture_loop_scope = session
asyncio_mode = auto
addopts = -p no:cacheprovider
timeout = {TEST_TIMEOUT_S}
"""


def download_tests(into: Path) -> Path:
    """``tests/`` of the prefect-dask sdist that matches the installed version."""
    wanted = f"prefect-dask=={version('prefect-dask')}"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    done = subprocess.run(
        [*command, "--dest", str(into), wanted], capture_output=True, text=True, timeout=300
    )
    sdists = sorted(into.glob("prefect_dask-*.tar.gz"))
    if done.returncode != 0 or not sdists:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(
            f"error: could not download the {wanted} sdist from the package index "
            f"(offline?), so prefect-dask's own tests did not run: {last}"
        )
    with tarfile.open(sdists[0]) as sdist:
        members = [m for m in sdist.getmembers() if m.name.split("/")[1:2] == ["tests"]]
        sdist.extractall(into, members=members, filter="data")
    return into / sdists[0].name.removesuffix(".tar.gz")


def use_project_runner(root: Path) -> None:
    """Upstream's tests, with ``DaskTaskRunner`` meaning the project's runner."""
    path = root / "tests" / "test_task_runners.py"
    source = path.read_text()
    if source.count(UPSTREAM_IMPORT) != 1:
        raise SystemExit(f"error: {path.name} no longer imports DaskTaskRunner as expected")
    path.write_text(source.replace(UPSTREAM_IMPORT, PROJECT_IMPORT))


def deselected(cores: int) -> dict[str, str]:
    """The upstream tests not run on a machine with ``cores`` cores, with their reasons."""
    return {t: why for t, why in DIFFERENCES.items() if cores < MIN_CORES.get(t, sys.maxsize)}


def run_bounded(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> int:
    """Run ``command``; past ``timeout`` seconds (or on Ctrl-C) kill it and all it started.

    The run gets a session of its own, so one ``killpg`` also reaches a process forked
    between a listing of its children and the kill (a race a loaded CI machine did hit);
    descendants that left the group are found by walking the tree first.
    """
    process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        print(
            f"error: prefect-dask's suite ran past {timeout:.0f} s and was stopped "
            "(a test hung; see the output above)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        _kill_tree(process)
        raise


def _kill_tree(process: subprocess.Popen, bound_s: float = 10.0) -> None:
    """SIGKILL the run's process group and every descendant; return once they are gone.

    A killed process lingers for a moment (a loaded machine showed ``running`` right
    after the kill), so the group is killed again until no member is left.
    """
    try:
        escaped = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        escaped = []
    for proc in escaped:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    psutil.wait_procs(escaped, timeout=bound_s)
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def stop_on_signals() -> None:
    """SIGINT and SIGTERM stop the run and everything it started (``run_bounded``).

    Started in the background by a script (``.ci/run``), this process inherits SIGINT
    ignored, and so would the tests it starts: Python's handler is put back first, and
    SIGTERM (what a cancelled job or ``.ci/run``'s exit sends) does the same as Ctrl-C.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def own_options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This runner's options (``--stock``, ``--suite-timeout``); the rest is pytest's."""
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    parser.add_argument("--stock", action="store_true")
    parser.add_argument("--suite-timeout", type=float, default=SUITE_TIMEOUT_S)
    return parser.parse_known_args(argv)


def main(argv: list[str]) -> int:
    """``--stock``: upstream's tests unchanged, on stock DaskTaskRunner (to compare)."""
    stop_on_signals()
    options, argv = own_options(argv)
    stock = options.stock
    with tempfile.TemporaryDirectory(prefix="prefect-dask-suite-") as tmp:
        root = download_tests(Path(tmp))
        (root / "pytest.ini").write_text(PYTEST_INI)
        if not stock:
            use_project_runner(root)
        home = Path(tmp) / "prefect-home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(home),
            PREFECT_TEST_MODE="1",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
        )
        from dask.system import CPU_COUNT

        skipped = {} if stock else deselected(CPU_COUNT)
        command = [sys.executable, "-m", "pytest", "tests/test_task_runners.py"]
        command += [f"--deselect=tests/test_task_runners.py::{test}" for test in skipped]
        runner = "stock DaskTaskRunner" if stock else "FastDaskTaskRunner"
        print(f"prefect-dask {version('prefect-dask')} tests against {runner}:", flush=True)
        for test, why in skipped.items():
            print(f"  deselected {test} ({CPU_COUNT} cores): {why}", flush=True)
        return run_bounded([*command, *argv], root, env, options.suite_timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
