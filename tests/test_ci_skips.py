"""tests/ci_skips.py in a pytest of its own: under CI=true a skip fails, with its reason."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

INNER = """
import pytest

def test_passes():
    pass

def test_needs_a_part():
    pytest.skip("chromium is not installed")

def test_needs_a_package():
    pytest.importorskip("no_such_package_here")

@pytest.mark.xfail(reason="known")
def test_known_failure():
    assert False
"""


def inner_run(tmp_path, ci: str | None) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = str(ROOT)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-p", "no:cacheprovider"]
        + ["-p", "no:xdist", "-rfs", "test_inner.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_under_ci_a_skip_is_a_failure_that_keeps_its_reason(tmp_path):
    done = inner_run(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "2 failed, 1 passed, 1 xfailed" in done.stdout, done.stdout
    assert "skipped under CI=true" in done.stdout
    assert "chromium is not installed" in done.stdout and "no_such_package_here" in done.stdout


def test_elsewhere_a_skip_stays_a_skip(tmp_path):
    done = inner_run(tmp_path, None)
    assert done.returncode == 0, done.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in done.stdout, done.stdout
