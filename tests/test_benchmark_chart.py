"""The benchmark chart: ratios to raw Dask, one colour per backend, scaling where measured."""

from __future__ import annotations

import re

from prefect_sklearn_dask.reports.benchmark_chart import backend_colours, benchmark_html, figures


def row(workload: str, workers: int, backend: str, wall: float | None) -> dict:
    return {"workload": workload, "workers": workers, "backend": backend, "wall_median_s": wall}


QUICK = [  # a --quick run: one worker count per workload
    row("seed", 2, "sequential", 3.2),
    row("seed", 2, "raw-dask", 2.0),
    row("seed", 2, "prefect-dask", 2.6),
    row("tiny", 2, "raw-dask", 0.4),
    row("tiny", 2, "prefect-dask", 5.0),
    row("tiny", 2, "joblib", None),  # failed: no bar
]
SCALED = QUICK + [row("seed", 1, "raw-dask", 3.5), row("seed", 1, "prefect-dask", 4.0)]


def bars(plot) -> dict[str, tuple[float, str]]:
    data = plot.renderers[0].data_source.data
    return {
        b: (r, c) for b, r, c in zip(data["backend"], data["ratio"], data["colour"], strict=True)
    }


def test_each_backend_is_a_multiple_of_raw_dask_in_one_colour_everywhere():
    colours = backend_colours(QUICK)
    seed, tiny = figures(QUICK)  # no scaling panels: one worker count each
    assert "multiple of raw Dask" in seed.title.text
    assert bars(seed) == {
        "raw-dask": (1.0, colours["raw-dask"]),
        "prefect-dask": (1.3, colours["prefect-dask"]),
        "sequential": (1.6, colours["sequential"]),
    }
    assert bars(tiny) == {
        "raw-dask": (1.0, colours["raw-dask"]),
        "prefect-dask": (12.5, colours["prefect-dask"]),
    }
    assert len(set(colours.values())) == len(colours)


def test_a_scaling_curve_only_where_more_than_one_worker_count_ran():
    titles = [p.title.text for p in figures(SCALED)]
    assert titles == [
        "seed, 2 worker(s): wall time as a multiple of raw Dask",
        "seed: median wall by workers",
        "tiny, 2 worker(s): wall time as a multiple of raw Dask",
    ]


def test_the_page_is_self_contained():
    html = benchmark_html(SCALED)
    assert re.search(r"<script[^>]*\ssrc=", html) is None
    assert "multiple of raw Dask" in html


def test_no_two_backends_share_a_colour_in_a_full_run():
    """Every backend of the suite, in its order: the search panel's bars (after 10 other
    backends) once took Category10's first colours again."""
    from prefect_sklearn_dask.benchmarks.catalog import BACKENDS

    rows = [row("seed", 2, b, 1.0) for b in BACKENDS if not b.startswith("train-flow")]
    rows += [row("search", 2, b, 2.0) for b in ("train-flow-search", "train-flow-halving")]
    rows += [row("search", 2, b, 1.5) for b in ("raw-dask", "prefect-dask", "prefect-threads")]
    colours = backend_colours(rows)
    assert len(colours) >= 16 and len(set(colours.values())) == len(colours)
    search = figures(rows)[-1]
    assert search.title.text.startswith("search")
    assert len(set(c for _, c in bars(search).values())) == len(bars(search)) == 5
