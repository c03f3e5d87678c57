"""The optimisation-history panel of ``comparison.html`` for ``--search optuna`` runs.

Per model: each trial's mean CV score by trial number (pruned trials at the mean of the
folds they ran, marked with an x), and the best score so far as a step line, so a reader
sees when the search stopped improving and how much the pruner cut. Pure: it takes the
``history`` rows the search reports (``trial``, ``state``, ``value``, ``best``).
"""

from __future__ import annotations

from typing import Any

from prefect_sklearn_dask.reports.figures import panel

MARKERS = {"complete": "circle", "pruned": "x"}


def has_history(models: list[dict[str, Any]]) -> bool:
    return any((m.get("search") or {}).get("history") for m in models)


def history_plot(models: list[dict[str, Any]]):
    """Best score by trial per model; every trial a dot, pruned ones an x."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.palettes import Category10_10

    searched = [m for m in models if (m.get("search") or {}).get("history")]
    scoring = searched[0]["search"].get("scoring", "score")
    plot = panel(
        f"optimisation history: best mean CV {scoring} by trial",
        x_axis_label="trial",
        y_axis_label=f"mean CV {scoring}",
    )
    dots = []
    for colour, m in zip(Category10_10, searched, strict=False):
        rows = m["search"]["history"]
        best = [r for r in rows if r["best"] is not None]
        plot.step(
            [r["trial"] for r in best],
            [r["best"] for r in best],
            mode="after",
            color=colour,
            line_width=2,
            legend_label=f"{m['model']} best ({m['search'].get('pruned_trials', 0)} pruned)",
        )
        for state, marker in MARKERS.items():
            shown = [r for r in rows if r["state"] == state and r["value"] is not None]
            if not shown:
                continue
            source = ColumnDataSource(
                {
                    "trial": [r["trial"] for r in shown],
                    "value": [r["value"] for r in shown],
                    "state": [state] * len(shown),
                    "model": [m["model"]] * len(shown),
                }
            )
            dots.append(
                plot.scatter(
                    "trial",
                    "value",
                    marker=marker,
                    size=8 if state == "complete" else 10,
                    color=colour,
                    alpha=0.6,
                    source=source,
                )
            )
    plot.add_tools(
        HoverTool(
            renderers=dots,
            tooltips=[
                ("model", "@model"),
                ("trial", "@trial"),
                ("state", "@state"),
                (scoring, "@value{0.0000}"),
            ],
        )
    )
    plot.legend.location = "bottom_right"
    plot.legend.label_text_font_size = "8pt"
    return plot
