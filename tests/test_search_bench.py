"""``benchmarks/search.py --quick`` for real: the same fits three ways, a table and a file.

Behaviour only (every backend ran the same number of fits, bytes per fit recorded), no
speed thresholds.
"""

from __future__ import annotations

import json


def test_quick_search_benchmark_runs_every_backend_on_the_same_fits(run_cli, tmp_path):
    out = tmp_path / "results"
    result = run_cli("benchmarks/search.py", "--quick", "--out", str(out), timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| quick | project | 36 |" in result.stdout
    (path,) = out.glob("search-*.json")
    rows = json.loads(path.read_text())["rows"]
    assert {r["backend"] for r in rows} == {"project", "sklearn-dask", "raw-dask"}
    assert {r["fits"] for r in rows} == {36}
    assert all(r["median_s"] > 0 and r["bytes_per_fit"] > 0 for r in rows)
    raw = next(r for r in rows if r["backend"] == "raw-dask")
    assert raw["vs_raw_dask"] == 1.0


def test_bad_sizes_are_one_line(run_cli):
    result = run_cli("benchmarks/search.py", "--sizes", "huge")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown --sizes huge; choose small, large"
