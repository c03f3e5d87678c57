"""Under ``CI=true`` a skipped test is a failed test.

Tests skip, saying why, where a part is missing (PostgreSQL, chromium, an optional
package); on a developer's machine that is fine. CI installs every one of those parts
(.ci/run, the ``dev`` extra), so there a skip means coverage silently gone: this plugin
turns it into a failure that keeps the skip's reason. ``xfail`` is left alone.

tests/conftest.py loads it; ``python -m pytest -p tests.ci_skips`` loads it elsewhere.
"""

from __future__ import annotations

import os

import pytest

CI_SAYS = "skipped under CI=true, where .ci/run and the dev extra install every part the tests need"


def in_ci() -> bool:
    """``CI`` set to true (GitHub Actions, GitLab CI and .ci/run set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _reason(report: pytest.BaseReport) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _fail_if_skipped(report: pytest.BaseReport) -> None:
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.longrepr = f"{CI_SAYS}: {_reason(report)}"
        report.outcome = "failed"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    _fail_if_skipped(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    _fail_if_skipped(report)  # a module skipped at import (importorskip at the top)
    return report
