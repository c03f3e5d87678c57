"""Make a Dask cluster's workers fit to run this project's tasks, or say why not.

Before any task is submitted: give the workers the flow's Prefect settings (a worker
plugin, so workers that join later get them too), ship the project's code when asked,
then check every worker can import it and reach the Prefect API. A worker that
cannot would otherwise fail each task with ``No module named ...`` or record its runs
where nobody looks.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from prefect_sklearn_dask.bridge import profile_depth, worker_env
from prefect_sklearn_dask.ml.errors import UserError

if TYPE_CHECKING:
    from distributed import Client

PROJECT_PACKAGES = ("prefect_sklearn_dask",)
INSTALL_HINT = (
    "install this project on them (`pip install -e .` from a checkout, or the built wheel, "
    "with the versions in constraints.txt) or pass --upload-code to ship it from here"
)


def _short(addresses: list[str], limit: int = 3) -> str:
    more = f" and {len(addresses) - limit} more" if len(addresses) > limit else ""
    return ", ".join(sorted(addresses)[:limit]) + more


def require_project_modules(client: Client) -> None:
    """A :class:`UserError` naming the workers that cannot import ``prefect_sklearn_dask``."""
    answers = client.run(worker_env.missing_modules, list(PROJECT_PACKAGES))
    lacking = {addr: missing for addr, missing in answers.items() if missing}
    if lacking:
        names = sorted({name for missing in lacking.values() for name in missing})
        raise UserError(
            f"Dask worker(s) {_short(list(lacking))} lack this project's modules "
            f"({', '.join(names)}): {INSTALL_HINT}"
        )


def require_api(client: Client, api_url: str) -> None:
    answers = client.run(worker_env.api_problem, api_url)
    failing = {addr: why for addr, why in answers.items() if why}
    if failing:
        addr, why = next(iter(failing.items()))
        raise UserError(
            f"Dask worker(s) {_short(list(failing))} cannot reach the Prefect API at {api_url} "
            f"({why}); run the Prefect server where they can reach it and set PREFECT_API_URL"
        )


def project_zip(folder: Path) -> Path:
    """The project's packages as one importable zip (sources only)."""
    path = folder / "prefect_sklearn_dask_code.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in PROJECT_PACKAGES:
            root = Path(__import__(package).__file__).resolve().parent
            for source in sorted(root.rglob("*.py")):
                archive.write(source, Path(package) / source.relative_to(root))
    return path


def upload_project(client: Client) -> None:
    """``Client.upload_file``: present workers and later ones put the zip on sys.path."""
    with tempfile.TemporaryDirectory(prefix="project-code-") as folder:
        client.upload_file(str(project_zip(Path(folder))))


def api_ca_pem() -> bytes | None:
    """The contents of the CA file this process trusts the Prefect API with, if any."""
    from prefect.settings import get_current_settings

    path = get_current_settings().api.ssl_cert_file
    return Path(path).read_bytes() if path and Path(path).is_file() else None


def prepare_workers(client: Client, api_url: str | None, upload_code: bool = False) -> None:
    """Settings plugin, optional code upload, then the import and API checks."""
    profile_depth.register(client)
    if api_url:
        client.register_plugin(
            worker_env.PrefectWorkerEnv(
                worker_env.forwarded_env(api_url),
                api_ca_pem() if api_url.startswith("https:") else None,
            ),
            name=worker_env.PLUGIN_NAME,
        )
    if upload_code:
        upload_project(client)
    require_project_modules(client)
    if api_url:
        require_api(client, api_url)


def flush_worker_logs(client: Client) -> None:
    """Push task logs still batched on the workers to the API before the flow ends."""
    client.run(worker_env.flush_logs)
