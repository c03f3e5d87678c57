"""One self-contained HTML page comparing a run's models, drawn with Bokeh from plain data.

People compare models by looking: score against fit time (is the winner worth its
cost?), the spread of CV folds (is the lead real?), and where the winner goes wrong
(confusion matrix, ROC curves on the held-out split). Bokeh's JavaScript is inlined
(``resources=INLINE``) so the page opens offline, from a file or over http, with
nothing fetched from a CDN.

Pure: it takes lists and dicts (as :class:`~prefect_sklearn_dask.ml.evaluate.TrainReport`
gives them, see :func:`comparison_html`) and returns a string; it imports nothing of
Prefect or Dask.
"""

from __future__ import annotations

from typing import Any

from prefect_sklearn_dask.reports.figures import HEIGHT, WIDTH, panel
from prefect_sklearn_dask.reports.label_placement import place_labels
from prefect_sklearn_dask.reports.optuna_history import has_history, history_plot

BEST_COLOUR = "#d62728"
OTHER_COLOUR = "#1f77b4"


def comparison_html(
    models: list[dict[str, Any]],
    metric: str,
    classes: list[str],
    best: dict[str, Any],
    title: str,
) -> str:
    """The page: ``models`` are table rows (``model``, ``metric``, ``fit_seconds``,
    optional ``cv_f1_macro_scores``) best first; ``best`` holds the best model's
    ``confusion`` (list of rows) and ``roc_curves`` (class index -> fpr/tpr/auc)."""
    from bokeh.embed import file_html
    from bokeh.layouts import column, row
    from bokeh.models import Div
    from bokeh.resources import INLINE

    top = [score_vs_time(models, metric)]
    if any(m.get("cv_f1_macro_scores") for m in models):
        top.append(cv_spread(models))
    if has_history(models):  # --search optuna
        top.append(history_plot(models))
    bottom = [confusion_plot(best.get("confusion"), classes, models[0]["model"])]
    bottom.append(roc_plot(best.get("roc_curves"), classes, models[0]["model"]))
    heading = Div(
        text=f"<h2>{_escape(title)}</h2><p>Best by <b>{_escape(metric)}</b>: "
        f"<b>{_escape(models[0]['model'])}</b> ({models[0][metric]:.4f}). "
        "Scores are on the held-out test split; hover a point for its numbers.</p>"
    )
    layout = column(heading, row(*top), row(*bottom))
    return file_html(layout, INLINE, title=title)


def score_vs_time(models: list[dict[str, Any]], metric: str):
    """Each model's score against its fit time (log axis), the best one marked."""
    from bokeh.models import ColumnDataSource, HoverTool, LabelSet

    scored = [m for m in models if m.get(metric) is not None]
    columns = {
        "model": [m["model"] for m in scored],
        "score": [m[metric] for m in scored],
        "fit": [max(m["fit_seconds"], 1e-4) for m in scored],
        "colour": [BEST_COLOUR if i == 0 else OTHER_COLOUR for i in range(len(scored))],
        "size": [16 if i == 0 else 10 for i in range(len(scored))],
        "label": [f"{m['model']} (best)" if i == 0 else m["model"] for i, m in enumerate(scored)],
    }
    x_padding, y_padding = 0.4, 0.15  # room for the labels beside the points
    spots = place_labels(
        columns["fit"],
        columns["score"],
        columns["label"],
        columns["size"],
        width=WIDTH,
        height=HEIGHT,
        x_padding=x_padding,
        y_padding=y_padding,
        log_x=True,
    )
    columns["dx"] = [dx for dx, _, _ in spots]
    columns["dy"] = [dy for _, dy, _ in spots]
    columns["align"] = [align for _, _, align in spots]
    source = ColumnDataSource(columns)
    plot = panel(
        f"{metric} against fit time",
        x_axis_type="log",
        x_axis_label="fit time (s, log scale)",
        y_axis_label=metric,
        tools="pan,wheel_zoom,box_zoom,reset,save",
    )
    plot.x_range.range_padding = x_padding
    plot.y_range.range_padding = y_padding
    plot.scatter("fit", "score", size="size", color="colour", source=source, alpha=0.85)
    plot.add_layout(
        LabelSet(
            x="fit",
            y="score",
            text="label",
            source=source,
            x_offset="dx",
            y_offset="dy",
            text_align="align",
            text_font_size="9pt",
        )
    )
    plot.add_tools(
        HoverTool(
            tooltips=[("model", "@model"), (metric, "@score{0.0000}"), ("fit", "@fit{0.000} s")]
        )
    )
    return plot


def cv_spread(models: list[dict[str, Any]]):
    """Each model's cross-validation fold scores as dots over a min-max bar, mean ticked."""
    from bokeh.models import ColumnDataSource, HoverTool

    with_cv = [m for m in models if m.get("cv_f1_macro_scores")]
    names = [m["model"] for m in with_cv]
    folds = {"model": [], "score": [], "fold": []}
    bars = {"model": [], "low": [], "high": [], "mean": [], "colour": []}
    for i, m in enumerate(with_cv):
        scores = m["cv_f1_macro_scores"]
        for fold, score in enumerate(scores, start=1):
            folds["model"].append(m["model"])
            folds["score"].append(score)
            folds["fold"].append(fold)
        bars["model"].append(m["model"])
        bars["low"].append(min(scores))
        bars["high"].append(max(scores))
        bars["mean"].append(sum(scores) / len(scores))
        bars["colour"].append(BEST_COLOUR if i == 0 else OTHER_COLOUR)
    plot = panel(
        f"cross-validation f1_macro, {len(with_cv[0]['cv_f1_macro_scores'])} folds",
        x_range=names,
        y_axis_label="f1_macro per fold",
    )
    bar_source = ColumnDataSource(bars)
    plot.vbar(
        x="model",
        bottom="low",
        top="high",
        width=0.3,
        color="colour",
        alpha=0.25,
        source=bar_source,
    )
    plot.scatter(
        "model", "mean", marker="dash", size=22, color="colour", line_width=2, source=bar_source
    )
    dots = plot.scatter(
        "model", "score", size=7, color="black", alpha=0.7, source=ColumnDataSource(folds)
    )
    plot.add_tools(
        HoverTool(
            renderers=[dots],
            tooltips=[("model", "@model"), ("fold", "@fold"), ("f1_macro", "@score{0.0000}")],
        )
    )
    plot.xaxis.major_label_orientation = 0.6
    return plot


def confusion_plot(confusion: list[list[int]] | None, classes: list[str], model: str):
    """The best model's confusion matrix on the held-out split, counts in the cells."""
    from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper
    from bokeh.palettes import Blues256

    labels = [str(c) for c in classes]
    plot = panel(
        f"{model}: confusion matrix (held-out split)",
        x_range=labels,
        y_range=list(reversed(labels)),
        x_axis_label="predicted",
        y_axis_label="true",
        tools="save",
    )
    if not confusion:
        return _empty(plot, "no confusion matrix recorded")
    cells: dict[str, list[Any]] = {
        "true": [],
        "predicted": [],
        "count": [],
        "share": [],
        "ink": [],
    }
    for t, counts in enumerate(confusion):
        total = sum(counts) or 1
        for p, count in enumerate(counts):
            cells["true"].append(labels[t])
            cells["predicted"].append(labels[p])
            cells["count"].append(count)
            cells["share"].append(count / total)
            cells["ink"].append("white" if count / total > 0.5 else "black")
    source = ColumnDataSource(cells)
    mapper = LinearColorMapper(palette=list(reversed(Blues256)), low=0, high=1)
    plot.rect(
        "predicted",
        "true",
        1,
        1,
        source=source,
        fill_color={"field": "share", "transform": mapper},
        line_color="white",
    )
    if len(labels) <= 12:
        plot.text(
            "predicted",
            "true",
            text="count",
            source=source,
            text_align="center",
            text_baseline="middle",
            text_font_size="10pt",
            text_color="ink",
        )
    plot.add_tools(
        HoverTool(
            tooltips=[
                ("true", "@true"),
                ("predicted", "@predicted"),
                ("count", "@count"),
                ("of the row", "@share{0.0%}"),
            ]
        )
    )
    plot.grid.visible = False
    plot.xaxis.major_label_orientation = 0.6 if len(labels) > 4 else 0
    return plot


def roc_plot(curves: dict[str, dict[str, Any]] | None, classes: list[str], model: str):
    """The best model's ROC curve(s): one-vs-rest per class, or the positive class."""
    from bokeh.models import HoverTool
    from bokeh.palettes import Category10_10, Turbo256

    plot = panel(
        f"{model}: ROC (held-out split)",
        x_axis_label="false positive rate",
        y_axis_label="true positive rate",
        x_range=(-0.02, 1.02),
        y_range=(-0.02, 1.02),
    )
    plot.line([0, 1], [0, 1], color="grey", line_dash="dashed")
    if not curves:
        return _empty(plot, f"{model} gives no class scores (no predict_proba)")
    palette = Category10_10 if len(curves) <= 10 else Turbo256[:: max(1, 256 // len(curves))]
    for colour, (label, curve) in zip(palette, curves.items(), strict=False):
        name = str(classes[int(label)]) if int(label) < len(classes) else label
        legend = f"{name} vs rest" if len(classes) > 2 else f"positive: {name}"
        plot.line(
            curve["fpr"],
            curve["tpr"],
            color=colour,
            line_width=2,
            legend_label=f"{legend} (AUC {curve['auc']:.3f})",
        )
    plot.legend.location = "bottom_right"
    plot.legend.label_text_font_size = "8pt"
    plot.add_tools(HoverTool(tooltips=[("fpr", "$x{0.00}"), ("tpr", "$y{0.00}")]))
    return plot


def _empty(plot, why: str):
    from bokeh.models import Label

    plot.add_layout(
        Label(
            x=10, y=HEIGHT // 2, x_units="screen", y_units="screen", text=why, text_font_size="10pt"
        )
    )
    return plot


def _escape(text: Any) -> str:
    from html import escape

    return escape(str(text))
