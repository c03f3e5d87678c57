"""What the READMEs say is true to the code: their Python examples run as written, the
files and make targets they name exist, and ``--help`` texts show no empty defaults.

A Python block that must not run is preceded by ``<!-- not run: <why> -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
BLOCK = re.compile(r"(?:<!-- not run:(?P<why>[^>]*)-->\n)?```python\n(?P<code>.*?)```", re.S)
# print(...)  # what it prints
EXPECTED = re.compile(r"^\s*print\(.*\)\s+#\s*(?P<out>.+)$", re.M)
PATH = re.compile(r"`((?:src|flows|benchmarks|cluster|tests|docs|\.ci)/[\w./-]*\w)`")
MAKE = re.compile(r"`make ([a-z-]+)")
# named in the READMEs but another project's: prefect-dask's own tests, in its sdist
ELSEWHERE = {"tests/test_task_runners.py"}


def _blocks() -> list[tuple[str, str | None, str]]:
    """(where, why not run or None, code) of every Python block in the READMEs."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in BLOCK.finditer(text):
            line = text[: match.start("code")].count("\n")
            where = f"{doc.relative_to(ROOT)}:{line}"
            found.append((where, match["why"], match["code"]))
    return found


RUN = [pytest.param(code, id=where) for where, why, code in _blocks() if why is None]


def test_the_readmes_have_python_examples_and_say_why_one_is_not_run():
    assert RUN, "no runnable ```python block found: the extraction broke"
    for where, why, _ in _blocks():
        assert why is None or len(why.strip()) > 10, f"{where}: say why it is not run"


@pytest.mark.parametrize("code", RUN)
def test_a_readme_python_example_runs_as_written(code, prefect_api, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for expected in EXPECTED.findall(code):
        assert expected.strip() in result.stdout, (expected, result.stdout[-2000:])


def test_every_file_the_readmes_name_exists():
    missing = [
        f"{doc.relative_to(ROOT)}: {path}"
        for doc in DOCS
        for path in PATH.findall(doc.read_text())
        if "<" not in path and path not in ELSEWHERE and not (ROOT / path).exists()
    ]
    assert not missing, missing


def test_every_make_target_the_readmes_name_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    named = {t for doc in DOCS for t in MAKE.findall(doc.read_text())}
    assert named and not named - targets, named - targets


@pytest.mark.parametrize(
    "script",
    ["benchmarks/compare.py", "flows/train.py", "flows/server.py", "cluster/local.py"],
)
def test_help_shows_no_empty_defaults(script):
    shown = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())  # argparse wraps lines
    assert not re.findall(r"\(default: (None|False|True)\)", text), text
