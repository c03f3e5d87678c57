"""The Prefect artifacts a run publishes: comparison table, best model, dashboard link."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

TABLE_KEY = "model-comparison"
BEST_KEY = "best-model"
DASHBOARD_KEY = "dask-dashboard"
REPORT_KEY = "dask-performance-report"
SCORE_COLUMNS = ("accuracy", "f1_macro", "roc_auc", "cv_f1_macro_mean", "cv_f1_macro_std")
TIME_COLUMNS = ("fit_seconds", "predict_seconds")
SEARCH_COLUMNS = ("cv_mean_std", "fits", "failed_fits", "search_seconds")


def search_cells(search: dict[str, Any] | None) -> dict[str, Any]:
    """A search's summary as table cells: CV ``mean +- std`` of its scorer, fits, seconds."""
    if not search:
        return {}
    return {
        "cv_mean_std": f"{search['cv_mean']:.4f} +- {search['cv_std']:.4f} "
        f"({search['scoring']}, {search['cv']} folds)",
        "fits": search["fits"],
        "failed_fits": search["failed_fits"],
        "search_seconds": round(search["search_seconds"], 2),
    }


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows rounded for reading, hyper-parameters as text, every row the same columns."""
    columns = ("rank", "model", "status", *SCORE_COLUMNS, *TIME_COLUMNS, "params", "error")
    if any(row.get("search") for row in rows):
        columns += SEARCH_COLUMNS
    if any(row.get("peak_worker_mb") for row in rows):
        columns += ("peak_worker_mb",)
    out = []
    for row in rows:
        row = {**row, **search_cells(row.get("search"))}
        clean: dict[str, Any] = {}
        for column in columns:
            value = row.get(column)
            if column in SCORE_COLUMNS and value is not None:
                value = round(value, 4)
            elif column in TIME_COLUMNS and value is not None:
                value = round(value, 3)
            elif column == "params":
                value = ", ".join(f"{k}={v}" for k, v in (value or {}).items()) or "defaults"
            clean[column] = value if value is not None else ""
        out.append(clean)
    return out


def best_model_markdown(summary: dict[str, Any]) -> str:
    best, model = summary["best"], summary["model"]
    scores = "\n".join(
        f"| {name} | {best[name]:.4f} |" for name in SCORE_COLUMNS if best.get(name) is not None
    )
    return (
        f"# Best model: `{best['model']}`\n\n"
        f"Ranked by **{summary['metric']}** on the held-out test set of "
        f"`{summary['dataset']['source']}` ({summary['dataset']['n_rows']} rows).\n\n"
        f"| metric | value |\n|---|---|\n{scores}\n\n"
        f"Trained {len(summary['rows'])} models on the **{summary['runner']}** runner "
        f"in {summary['timings']['train_seconds']:.2f} s.\n\n"
        f"Stored as a Prefect result (joblib): `{model['record_path']}`  \n"
        f"sha256 `{model['sha256']}`\n\n"
        f"Predict with:\n\n```\n{summary['predict_command']}\n```\n"
    )


def publish(summary: dict[str, Any]) -> None:
    """Write the run's artifacts under stable keys, so each key keeps a history."""
    create_table_artifact(
        table=table_rows(summary["rows"]),
        key=TABLE_KEY,
        description=f"Classifiers compared on {summary['dataset']['source']}, best first.",
    )
    create_markdown_artifact(
        markdown=best_model_markdown(summary),
        key=BEST_KEY,
        description=f"Best model: {summary['best']['model']}",
    )
    if summary.get("dashboard_url"):
        create_link_artifact(
            link=summary["dashboard_url"],
            link_text="Dask dashboard",
            key=DASHBOARD_KEY,
            description="The Dask dashboard of the cluster this run used.",
        )
    if summary.get("performance_report"):
        create_markdown_artifact(
            markdown=report_markdown(
                summary["performance_report"],
                summary.get("performance_report_url"),
                summary.get("dashboard_url"),
            ),
            key=REPORT_KEY,
            description="The Dask performance report of this run (HTML, next to its model).",
        )


def report_markdown(report_path: str, url: str | None, dashboard: str | None) -> str:
    """The saved report as an http link where the long-lived cluster serves it (``url``),
    else as a path with how to open it (browsers do not follow ``file://`` links from the
    UI)."""
    live = f"Live dashboard (while the cluster runs): {dashboard}\n" if dashboard else ""
    where = (
        f"[Open the report]({url}) (served by the long-lived Dask cluster's dashboard); "
        f"saved at `{report_path}`"
        if url
        else f"Saved at `{report_path}`: open it in a browser on this machine (File > Open); "
        "`make run` serves it over http instead"
    )
    return (
        f"# Dask performance report\n\n{where}\n\nTask stream, worker profile, bandwidth "
        f"and scheduler statistics of this run.\n\n{live}"
    )
