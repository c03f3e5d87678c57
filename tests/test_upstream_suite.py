"""The prefect-dask suite runner (tests/upstream/run_prefect_dask_suite.py), without the suite:
every deselected upstream test is explained in the README (and deselected only where it
cannot run), no sdist means a failure, and a run that hangs is stopped."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import signal_masks

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "upstream" / "run_prefect_dask_suite.py"


def _script():
    spec = importlib.util.spec_from_file_location("run_prefect_dask_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_lists_every_deselected_upstream_test_with_its_reason():
    readme = " ".join((ROOT / "README.md").read_text().split())
    for test, reason in _script().DIFFERENCES.items():
        assert f"`{test.split('::')[-1]}`" in readme, test
        assert " ".join(reason.split()) in readme, reason


def test_no_package_index_is_a_failure_that_says_so(tmp_path):
    env = {
        **os.environ,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # nothing listens on the discard port
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "PIP_NO_CACHE_DIR": "1",
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "error: could not download the prefect-dask==" in done.stderr
    assert "(offline?)" in done.stderr and "Traceback" not in done.stderr


def test_the_three_thread_test_is_deselected_only_below_three_cores():
    script = _script()
    test = "TestDaskTaskRunner::test_as_completed_yields_correct_order"
    assert test in script.deselected(2)
    assert test not in script.deselected(3) and test not in script.deselected(16)


def test_its_own_options_are_taken_out_and_pytests_passed_on_in_order():
    """.ci/run gives a longer suite bound beside pytest options with values of their own."""
    options, rest = _script().own_options(
        ["-q", "-W", "ignore::UserWarning", "--suite-timeout", "2400", "--timeout=600"]
    )
    assert options.suite_timeout == 2400 and not options.stock
    assert rest == ["-q", "-W", "ignore::UserWarning", "--timeout=600"]
    options, rest = _script().own_options(["--stock", "-x"])
    assert options.stock and options.suite_timeout == _script().SUITE_TIMEOUT_S
    assert rest == ["-x"]


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_run_past_its_bound_is_stopped_with_its_children(tmp_path, capsys):
    """The whole upstream run is bounded: a hung pytest and what it started are killed,
    also the processes it forks while it is being stopped (it forks without pause here)."""
    import time

    pid_file = tmp_path / "children.pid"
    hang = (
        "import subprocess, time; "
        f"out = open({str(pid_file)!r}, 'w', buffering=1)\n"
        "while True: out.write(f\"{subprocess.Popen(['sleep', '60']).pid}\\n\"); time.sleep(0.005)"
    )
    started = time.monotonic()
    code = _script().run_bounded([sys.executable, "-c", hang], tmp_path, dict(os.environ), 8)
    assert code == 1 and time.monotonic() - started < 30
    assert "error: prefect-dask's suite ran past 8 s and was stopped" in capsys.readouterr().err
    children = [int(pid) for pid in pid_file.read_text().split()]
    assert children, "the hung run started no process to stop"
    alive = [pid for pid in children if _running(pid)]
    assert not alive, f"{len(alive)} of {len(children)} children outlived the stop"


def test_sigterm_stops_a_run_started_in_the_background_with_what_it_started(tmp_path):
    """``.ci/run`` starts the runner in the background (SIGINT ignored, as bash does for
    ``&``) and sends SIGTERM when it exits early: the run and the tests it started stop,
    and those tests did not inherit an ignored SIGINT."""
    import time

    pid_file = tmp_path / "test.pid"
    runner = (
        "import importlib.util, os, sys\n"
        f"spec = importlib.util.spec_from_file_location('suite', {str(SCRIPT)!r})\n"
        "suite = importlib.util.module_from_spec(spec); spec.loader.exec_module(suite)\n"
        "suite.stop_on_signals()\n"
        f"hang = \"open({str(pid_file)!r}, 'w').write(str(__import__('os').getpid())); "
        "__import__('time').sleep(120)\"\n"
        "sys.exit(suite.run_bounded([sys.executable, '-c', hang], '.', dict(os.environ), 100))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", runner],
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    test_pid = None
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        test_pid = int(pid_file.read_text())
        ignored = signal_masks(test_pid)["SigIgn"] & (1 << (signal.SIGINT - 1))
        assert not ignored, "the run's tests inherited an ignored SIGINT"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _running(test_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(test_pid), "the run's test process outlived SIGTERM"
    finally:  # a failed check leaves nothing running either
        if process.poll() is None:
            process.kill()
        if test_pid is not None and _running(test_pid):
            os.kill(test_pid, signal.SIGKILL)
