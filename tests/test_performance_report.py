"""A Dask run's performance report draws offline: BokehJS inline, nothing from outside.

Most clusters have no internet; stock prefect-dask writes a report whose page loads
BokehJS from cdn.bokeh.org and stays blank there. The browser below may reach
127.0.0.1 and local files only: every other request is aborted and recorded.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from prefect_sklearn_dask.flow.train_flow import train_flow
from tests.test_comparison_chart import browser, inked_pixels  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def report(prefect_api, local_cluster, tmp_path_factory) -> Path:
    summary = train_flow(
        dataset="iris",
        models=["logreg", "nb"],
        runner="dask",
        address=local_cluster.scheduler_address,
        storage=str(tmp_path_factory.mktemp("storage")),
        cache=False,
    )
    return Path(summary["performance_report"])


def test_the_report_loads_no_script_from_outside(report):
    html = report.read_text()
    assert "Dask Performance Report" in html
    sources = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", html)
    assert sources == [], f"the page loads scripts from {sources}"
    assert "cdn.bokeh.org" not in html


def test_the_report_draws_with_every_outside_request_blocked(browser, report):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    blocked: list[str] = []
    errors: list[str] = []

    def only_local(route):
        url = urlparse(route.request.url)
        if url.scheme in ("file", "data", "blob") or url.hostname == "127.0.0.1":
            return route.continue_()
        blocked.append(route.request.url)
        return route.abort()

    page.route("**/*", only_local)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(report.as_uri())
    page.wait_for_function("() => window.Bokeh !== undefined", timeout=30_000)
    # The report opens on its summary (text); its task stream is a plot.
    page.get_by_text("Task Stream").first.click()
    canvases = page.locator("canvas")
    canvases.first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    inked = [n for n in map(inked_pixels, canvases.all()) if n > 500]
    assert inked, "the task stream drew nothing"
    assert blocked == [] and errors == []


def test_the_report_shows_the_flow_call_as_its_calling_code(report):
    """Not the runner's internals that stock would find on the stack."""
    html = report.read_text()
    assert "train_flow(" in html and "models=" in html
    assert "request_performance_report" not in html


def test_the_calling_code_masks_url_passwords():
    from prefect_sklearn_dask.flow.train_flow import calling_code

    code = calling_code({"dataset": "s3://reader:hunter2@bucket/data/"}, "quiet-owl")
    assert "train_flow(" in code and "quiet-owl" in code
    assert "hunter2" not in code
