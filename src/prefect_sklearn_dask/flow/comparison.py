"""A run's ``comparison.html`` (next to its model) and the markdown artifact that points to it.

The page is drawn by :mod:`prefect_sklearn_dask.reports.comparison_chart` from the
evaluation's plain numbers; here it is written atomically next to the run's model and
summed up in markdown with the key numbers inline, so the Prefect UI shows them even
where the page cannot be opened.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect_sklearn_dask.flow.model_store import write_atomic
from prefect_sklearn_dask.ml.evaluate import TrainReport

CHART_NAME = "comparison.html"
CHART_KEY = "model-comparison-chart"


def prewarm_chart() -> threading.Thread:
    """Import the chart's modules (bokeh: ~60% of drawing the page) in a thread, now.

    Called when the fits are out: the flow's thread then mostly waits on them, so the
    imports cost nothing there, while after the last fit they were on the critical path.
    """
    thread = threading.Thread(target=_import_chart_modules, name="prewarm-chart", daemon=True)
    thread.start()
    return thread


def _import_chart_modules() -> None:
    with contextlib.suppress(Exception):  # drawing the chart imports them again and says why
        import bokeh.embed  # noqa: F401
        import bokeh.layouts  # noqa: F401
        import bokeh.models  # noqa: F401
        import bokeh.plotting  # noqa: F401
        import bokeh.resources  # noqa: F401

        import prefect_sklearn_dask.reports.comparison_chart  # noqa: F401


def write_chart(
    ranked: list[TrainReport], classes: list[Any], metric: str, folder: Path, title: str
) -> Path:
    """Draw the comparison of ``ranked`` (best first) into ``folder/comparison.html``."""
    from prefect_sklearn_dask.reports.comparison_chart import comparison_html

    page = comparison_html(
        models=[{**r.row()} for r in ranked],
        metric=metric,
        classes=[str(c) for c in classes],
        best=ranked[0].diagnostics(),
        title=title,
    )
    path = folder / CHART_NAME
    write_atomic(path, page.encode())
    return path


def open_hint(path: str, url: str | None) -> str:
    """A link where the page is served over http; else the path and how to open it."""
    if url:
        return f"[Open the chart]({url}) (served by the long-lived Dask cluster's dashboard)"
    return (
        f"Chart: `{path}`. Open it in a browser on this machine (File > Open, or "
        f"`python -m webbrowser {path}`); `make run` serves it over http instead."
    )


def chart_markdown(
    ranked: list[TrainReport], classes: list[Any], metric: str, path: str, url: str | None
) -> str:
    """Key numbers inline: each model's score and fit time, the best's confusion matrix."""
    best = ranked[0]
    cv = any(r.cv_f1_macro_mean is not None for r in ranked)
    header = f"| model | {metric} | fit s |" + (" cv f1_macro (mean ± std) |" if cv else "")
    lines = [header, "|---|---|---|" + ("---|" if cv else "")]
    for r in ranked:
        score = getattr(r, metric)
        cells = [r.model, "n/a" if score is None else f"{score:.4f}", f"{r.fit_seconds:.3f}"]
        if cv:
            cells.append(
                f"{r.cv_f1_macro_mean:.4f} ± {r.cv_f1_macro_std:.4f}"
                if r.cv_f1_macro_mean is not None
                else ""
            )
        lines.append("| " + " | ".join(cells) + " |")
    parts = [
        f"# Model comparison: best `{best.model}`\n",
        open_hint(path, url) + "\n",
        "\n".join(lines) + "\n",
    ]
    if best.confusion:
        names = [str(c) for c in classes]
        matrix = [f"| true \\ predicted | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
        matrix += [
            f"| {name} | {' | '.join(str(n) for n in row)} |"
            for name, row in zip(names, best.confusion, strict=False)
        ]
        parts.append(
            f"Confusion matrix of `{best.model}` on the held-out split:\n\n" + "\n".join(matrix)
        )
    if best.roc_curves:
        aucs = ", ".join(f"{classes[int(k)]}: {v['auc']:.3f}" for k, v in best.roc_curves.items())
        kind = "one-vs-rest per class" if len(classes) > 2 else "positive class"
        parts.append(f"ROC AUC of `{best.model}` ({kind}): {aucs}")
    return "\n\n".join(parts) + "\n"


def publish_chart(
    ranked: list[TrainReport],
    classes: list[Any],
    metric: str,
    folder: Path,
    title: str,
    serve: Callable[[Path], str | None],
) -> dict[str, str | None]:
    """Write the page, publish the markdown artifact; the page's path and http URL
    (``serve``: a path's URL where the long-lived cluster serves it, else None)."""
    from prefect.artifacts import create_markdown_artifact

    path = write_chart(ranked, classes, metric, folder, title)
    url = serve(path)
    create_markdown_artifact(
        markdown=chart_markdown(ranked, classes, metric, str(path), url),
        key=CHART_KEY,
        description=f"Score against fit time, CV spread, {ranked[0].model}'s confusion and ROC.",
    )
    return {"path": str(path), "url": url}
