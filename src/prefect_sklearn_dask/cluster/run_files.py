"""Runs' HTML pages (comparison chart, Dask performance report) over http, from the dashboard.

A ``file://`` link in a Prefect artifact does nothing: browsers do not follow ``file://``
links from a page served over http. So the long-lived cluster (``cluster/local.py
start``, which ``make run`` leaves running) serves the ``.html`` files under the runs'
folder (``$PREFECT_HOME/storage/train-flow``) at ``/runs/<flow-run-id>/<file>.html`` on
its dashboard's http server, 127.0.0.1 by default: a process the project already runs,
through distributed's own extension point (``distributed.scheduler.http.routes``), so
no server of our own to start, secure or stop. It serves ``.html`` only, never the
pickled models beside them, and Tornado's ``StaticFileHandler`` keeps requests inside
that folder.

Where no such cluster runs (or a run stored its files elsewhere) :func:`served_url`
returns None and the artifact shows the path as text with how to open it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tornado import web

ROUTE_MODULE = __name__
PREFIX = "runs"


def runs_root() -> Path:
    """The folder every run's model, report and chart go to, by default."""
    from prefect_sklearn_dask.flow.model_store import MODEL_DIR, default_storage

    return (default_storage() / MODEL_DIR).resolve()


class RunFilesHandler(web.StaticFileHandler):
    """Tornado's static handler limited to ``.html`` files."""

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if Path(absolute_path).suffix != ".html":
            raise web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)


def route_modules(current: list[str]) -> list[str]:
    """``distributed.scheduler.http.routes`` with this module added (for ``dask.config.set``)."""
    return [*current, ROUTE_MODULE] if ROUTE_MODULE not in current else list(current)


@dataclass(frozen=True)
class PageServer:
    """Where the running long-lived cluster serves the runs' pages: its folder and URL."""

    root: Path
    base_url: str

    def url_for(self, path: Path) -> str | None:
        """``path``'s http URL, or None for a file outside the served folder."""
        try:
            relative = path.resolve().relative_to(self.root)
        except ValueError:
            return None
        return f"{self.base_url}/{PREFIX}/{relative.as_posix()}"


def page_server() -> PageServer | None:
    """The running long-lived cluster's page server, or None.

    Asks its scheduler whether it answers, through a client of its own: a run resolves
    this once, as its runner starts, not while the scheduler draws the run's performance
    report in its event loop (1.4 s after a 160-fit search), which each page link then
    waited for: 0.7 s of the search command's publishing (benchmarks/README.md).
    """
    from prefect_sklearn_dask.cluster.local import running_cluster

    state = running_cluster(timeout=1.0)
    if state is None or not state.dashboard_url or not state.files_root:
        return None
    return PageServer(Path(state.files_root), state.dashboard_url.rsplit("/", 1)[0])


def served_url(path: Path) -> str | None:
    """The http URL the running long-lived cluster serves ``path`` at, or None."""
    server = page_server()
    return server.url_for(path) if server else None


# Read by distributed when the scheduler's http server starts (the module is imported
# only in a process that asked for it through ``route_modules``).
routes = [(rf"/{PREFIX}/(.*)", RunFilesHandler, {"path": str(runs_root())})]
