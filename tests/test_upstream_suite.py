"""The prefect-dask suite runner (tests/upstream/run_prefect_dask_suite.py), without the suite:
every deselected upstream test is explained in the README, and no sdist means a failure."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

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
