"""The benchmark chart: what the suite measures, each backend's time as a multiple of raw Dask.

Per workload, one bar per backend at the largest worker count that ran: its median wall
over raw Dask's on the same workload and cluster (1.0 = raw Dask, the line drawn), the
number the goals are written in. A scaling curve (median wall by workers) is drawn only
for workloads that ran at more than one worker count; before, a ``--quick`` run drew
every point at one x. Each backend keeps one colour across all panels.

Pure: rows as :func:`prefect_sklearn_dask.benchmarks.report.summarize` makes them in,
bokeh figures or a self-contained HTML page (``resources=INLINE``) out.
"""

from __future__ import annotations

from typing import Any

from prefect_sklearn_dask.reports.figures import HEIGHT, panel

RAW = "raw-dask"


def palette(n: int) -> list[str]:
    """``n`` distinct colours: Category10's first, then their light shades, then the
    Category20b/c hues; past 60 (never so far), evenly spaced ones from Turbo256."""
    from bokeh.palettes import Category20_20, Category20b_20, Category20c_20, Turbo256

    colours = list(
        dict.fromkeys(
            [*Category20_20[0::2], *Category20_20[1::2], *Category20b_20, *Category20c_20]
        )
    )
    if n > len(colours):
        step = len(Turbo256) / (n - len(colours))
        colours += [Turbo256[int(i * step)] for i in range(n - len(colours))]
    return colours[:n]


def backend_colours(rows: list[dict[str, Any]]) -> dict[str, str]:
    """One colour per backend, none shared, in the order backends first appear, for every
    panel (Category10 alone wrapped around at the 11th backend)."""
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    return dict(zip(backends, palette(len(backends)), strict=True))


def ratio_figure(workload: str, rows: list[dict[str, Any]], colours: dict[str, str]):
    """Each backend's median wall over raw Dask's, at the workload's largest worker count."""
    from bokeh.models import ColumnDataSource, HoverTool, LabelSet, Range1d, Span

    workers = max(r["workers"] for r in rows)
    here = {r["backend"]: r for r in rows if r["workers"] == workers}
    raw = here.get(RAW, {}).get("wall_median_s")
    measured = [
        (b, r["wall_median_s"] / raw, r["wall_median_s"])
        for b, r in here.items()
        if raw and r.get("wall_median_s")
    ]
    measured.sort(key=lambda item: item[1])
    source = ColumnDataSource(
        {
            "backend": [b for b, _, _ in measured],
            "ratio": [ratio for _, ratio, _ in measured],
            "wall": [wall for _, _, wall in measured],
            "label": [f"{ratio:.2f}x" for _, ratio, _ in measured],
            "colour": [colours[b] for b, _, _ in measured],
        }
    )
    plot = panel(
        f"{workload}, {workers} worker(s): wall time as a multiple of raw Dask",
        y_range=[b for b, _, _ in measured] or ["(no raw Dask run)"],
        x_axis_label="median wall / raw Dask's (1 = raw Dask)",
        height=max(HEIGHT // 2, 60 + 40 * len(measured)),
        tools="save",
    )
    plot.hbar(y="backend", right="ratio", height=0.6, color="colour", source=source)
    plot.add_layout(
        LabelSet(
            x="ratio",
            y="backend",
            text="label",
            source=source,
            x_offset=4,
            y_offset=-6,
            text_font_size="9pt",
        )
    )
    plot.add_layout(Span(location=1.0, dimension="height", line_dash="dashed", line_color="grey"))
    plot.x_range = Range1d(0, max([ratio for _, ratio, _ in measured], default=1.0) * 1.2)
    plot.add_tools(
        HoverTool(
            tooltips=[
                ("backend", "@backend"),
                ("x raw Dask", "@ratio{0.00}"),
                ("median wall", "@wall{0.000} s"),
            ]
        )
    )
    return plot


def scaling_figure(workload: str, rows: list[dict[str, Any]], colours: dict[str, str]):
    """Median wall by worker count, one line per backend."""
    from bokeh.models import HoverTool

    plot = panel(
        f"{workload}: median wall by workers",
        x_axis_label="workers",
        y_axis_label="seconds",
    )
    for backend in dict.fromkeys(r["backend"] for r in rows):
        points = sorted(
            (r["workers"], r["wall_median_s"])
            for r in rows
            if r["backend"] == backend and r.get("wall_median_s") is not None
        )
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        plot.line(xs, ys, color=colours[backend], legend_label=backend, line_width=2)
        plot.scatter(xs, ys, color=colours[backend], legend_label=backend, size=7)
    plot.add_tools(HoverTool(tooltips=[("workers", "@x"), ("wall s", "@y")]))
    plot.xaxis.ticker = sorted({r["workers"] for r in rows})
    plot.legend.label_text_font_size = "8pt"
    plot.legend.click_policy = "hide"
    plot.add_layout(plot.legend[0], "right")  # beside the lines, not over them
    return plot


def figures(rows: list[dict[str, Any]]) -> list[Any]:
    """Per workload its ratio bars, then its scaling curve where >1 worker count ran."""
    colours = backend_colours(rows)
    plots = []
    for workload in dict.fromkeys(r["workload"] for r in rows):
        mine = [r for r in rows if r["workload"] == workload and r.get("wall_median_s")]
        if not mine:
            continue
        plots.append(ratio_figure(workload, mine, colours))
        if len({r["workers"] for r in mine}) > 1:
            plots.append(scaling_figure(workload, mine, colours))
    return plots


def benchmark_html(rows: list[dict[str, Any]], title: str = "benchmarks") -> str:
    """The chart as one self-contained page (bokeh inlined: opens offline)."""
    from bokeh.embed import file_html
    from bokeh.layouts import gridplot
    from bokeh.resources import INLINE

    return file_html(gridplot(figures(rows), ncols=2), INLINE, title=title)
