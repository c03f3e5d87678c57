"""A run's comparison chart: written next to its model, self-contained, summed up in an
artifact, and drawn for real in a headless Chromium together with the run's Prefect UI.

The browser tests drive the distribution's ``chromium`` (``apt-get install chromium``;
``.ci/run`` installs it) through Playwright's Python package, no browser download; a
plain ``chromium --screenshot`` shows bokeh canvases blank, so the test waits for the
canvases and reads their pixels.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter

from prefect_sklearn_dask.flow.artifacts import TABLE_KEY
from prefect_sklearn_dask.flow.comparison import CHART_KEY, CHART_NAME
from prefect_sklearn_dask.flow.train_flow import train_flow
from prefect_sklearn_dask.ml.data import prepare
from prefect_sklearn_dask.ml.evaluate import ROC_POINTS, train_and_evaluate
from prefect_sklearn_dask.reports.comparison_chart import comparison_html

MODELS = ["logreg", "rf", "nb", "knn"]
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p is not None), None
)


@pytest.fixture(scope="module")
def summary(prefect_api, tmp_path_factory) -> dict:
    storage = tmp_path_factory.mktemp("storage")
    return train_flow(
        dataset="wine", models=MODELS, runner="threads", cv=3, storage=str(storage), cache=False
    )


def read_artifact(key: str, run_id: str):
    # the sync client: Playwright's sync API keeps an event loop running in this thread
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            flow_run_filter=FlowRunFilter(id={"any_": [run_id]}),
        )
    return artifact


def test_the_chart_is_written_next_to_the_model_and_is_self_contained(summary):
    chart = Path(summary["comparison_chart"]["path"])
    assert chart.name == CHART_NAME
    assert chart.parent == Path(summary["model"]["record_path"]).parent
    html = chart.read_text()
    assert re.search(r"<script[^>]*\ssrc=", html) is None, "the page loads a script from outside"
    assert re.search(r"<link[^>]*\shref=", html) is None
    for model in MODELS:
        assert f'"{model}"' in html
    assert "cross-validation f1_macro, 3 folds" in html
    assert "confusion matrix" in html and "ROC" in html
    assert summary["comparison_chart"]["url"] is None  # no long-lived cluster serves it here


def test_the_chart_artifact_has_the_key_numbers_and_no_dead_link(summary):
    artifact = read_artifact(CHART_KEY, summary["flow_run_id"])
    best = summary["best"]
    assert f"best `{best['model']}`" in artifact.data
    assert f"| {best['model']} | {best['f1_macro']:.4f} |" in artifact.data
    assert "true \\ predicted" in artifact.data
    assert summary["comparison_chart"]["path"] in artifact.data
    assert "file://" not in artifact.data


def test_evaluation_records_confusion_and_roc_small_and_json_able():
    data = prepare("wine", None, 0.25, 0)
    report = train_and_evaluate("logreg", data, cv=3)
    assert sum(map(sum, report.confusion)) == report.n_test
    assert len(report.confusion) == data.n_classes
    assert sorted(report.roc_curves) == ["0", "1", "2"]  # one-vs-rest per class
    for curve in report.roc_curves.values():
        assert 2 <= len(curve["fpr"]) == len(curve["tpr"]) <= ROC_POINTS
    assert len(report.cv_f1_macro_scores) == 3
    assert "confusion" not in report.row() and "roc_curves" not in report.row()
    binary = train_and_evaluate("nb", prepare("breast_cancer", None, 0.25, 0))
    assert list(binary.roc_curves) == ["1"]  # the positive class only


def test_the_page_says_what_is_missing_instead_of_drawing_nothing():
    rows = [{"model": "svc", "f1_macro": 0.9, "fit_seconds": 0.01}]
    html = comparison_html(rows, "f1_macro", ["a", "b"], {}, "t")
    assert "cross-validation" not in html  # no --cv, no CV panel
    assert "gives no class scores" in html and "no confusion matrix recorded" in html


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    """A page at ``url`` with its console errors and failed responses recorded."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.errors, page.failed = [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("response", lambda r: page.failed.append(r.url) if r.status >= 400 else None)
    page.goto(url)
    return page


def inked_pixels(canvas) -> int:
    """Pixels neither transparent nor white: a blank bokeh canvas has none."""
    return canvas.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0;
                  for (let i = 0; i < d.length; i += 4)
                      if (d[i + 3] && (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240)) n++;
                  return n; }"""
    )


def test_the_chart_renders_in_a_browser(browser, summary):
    page = open_page(browser, Path(summary["comparison_chart"]["path"]).as_uri())
    canvases = page.locator("canvas")  # Playwright looks inside bokeh's shadow roots
    canvases.nth(7).wait_for(timeout=30_000)  # 4 plots, each a drawing and an overlay layer
    page.wait_for_timeout(500)
    inked = [n for n in map(inked_pixels, canvases.all()) if n > 2000]
    assert len(inked) >= 4, f"blank plots: {inked}"  # score/time, CV, confusion, ROC
    assert page.errors == []


def ui_problems(page) -> list[str]:
    """Console errors, less the Prefect UI's own missing icon (``/ico/undefined.svg``)."""
    if all("/ico/" in url for url in page.failed):
        return [e for e in page.errors if not e.startswith("Failed to load resource")]
    return page.errors + page.failed


def test_the_prefect_ui_shows_the_run_and_its_comparison(browser, summary, prefect_api):
    ui = prefect_api.removesuffix("/api")
    page = open_page(browser, f"{ui}/runs/flow-run/{summary['flow_run_id']}")
    page.get_by_text("train-logreg").first.wait_for(timeout=60_000)

    table = read_artifact(TABLE_KEY, summary["flow_run_id"])
    page = open_page(browser, f"{ui}/artifacts/artifact/{table.id}")
    for model in MODELS:
        cell = page.locator("td").filter(has_text=re.compile(rf"^\s*{model}\s*$"))
        cell.first.wait_for(timeout=60_000)
    assert ui_problems(page) == []

    chart = read_artifact(CHART_KEY, summary["flow_run_id"])
    page = open_page(browser, f"{ui}/artifacts/artifact/{chart.id}")
    heading = f"Model comparison: best {summary['best']['model']}"
    page.get_by_role("heading", name=heading).wait_for(timeout=60_000)
    page.locator("th", has_text="true \\ predicted").wait_for(timeout=10_000)
    assert ui_problems(page) == []


def test_the_charts_imports_can_start_before_the_fits_end():
    """bokeh is imported off the flow's thread (flow/training.py starts it when the fits go out),
    not by the first chart after the last fit; importing the flow does not import it."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from prefect_sklearn_dask.flow.train_flow import train_flow\n"
        "from prefect_sklearn_dask.flow.comparison import prewarm_chart\n"
        "assert 'bokeh.embed' not in sys.modules, 'imported with the flow'\n"
        "prewarm_chart().join(timeout=120)\n"
        "assert 'bokeh.embed' in sys.modules and 'bokeh.plotting' in sys.modules\n"
        "assert 'prefect_sklearn_dask.reports.comparison_chart' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
