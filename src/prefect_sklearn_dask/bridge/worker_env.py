"""Code that runs *on* Dask workers: Prefect settings, import and API probes, log flush.

Pickled by value (see the last line), so it reaches a hand-started ``dask worker``
that lacks this project: the probes must run there to say what is missing. Only the
standard library and ``distributed`` are imported at module level.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import ssl
import sys
import tempfile
import urllib.request
from pathlib import Path

import cloudpickle
from distributed.diagnostics.plugin import WorkerPlugin

PLUGIN_NAME = "prefect-worker-env"
CA_ENV = "PREFECT_API_SSL_CERT_FILE"
# What a worker needs to report to the flow's server, taken from the flow's process.
FORWARDED = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_API_TLS_INSECURE_SKIP_VERIFY",
    "PREFECT_SERVER_ANALYTICS_ENABLED",
    "DO_NOT_TRACK",
    "PREFECT_LOGGING_LEVEL",
    "PREFECT_LOGGING_TO_API_ENABLED",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL",
)


def apply_env(env: dict[str, str]) -> None:
    """Set ``env`` and make an already-imported Prefect read it again.

    Task runs receive the flow's settings with each task, but Prefect's log shipper
    runs in its own thread on the *global* settings: without the API URL there it
    sends task logs to a temporary server of the worker's own (the upstream
    "logs missing with DaskTaskRunner(address=...)" report).
    """
    os.environ.update(env)
    context = sys.modules.get("prefect.context")
    if context is not None:
        context.refresh_global_settings_context()


def shared_ca_path(pem: bytes) -> Path:
    """Where a CA file with these contents lives on every machine: the temp folder, named
    by its hash. Task runs carry the flow's settings, CA path included, to the workers, so
    the flow and its workers must name the same file."""
    digest = hashlib.sha256(pem).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"prefect-api-ca-{digest}.pem"


def install_ca(pem: bytes) -> str:
    """Put the CA (a public certificate) at :func:`shared_ca_path`; return that path."""
    path = shared_ca_path(pem)
    if not (path.is_file() and path.read_bytes() == pem):
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_bytes(pem)
        partial.chmod(0o644)
        os.replace(partial, path)
    return str(path)


class PrefectWorkerEnv(WorkerPlugin):
    """Gives every worker, present and future, the flow's Prefect API settings.

    ``ca_pem``: the CA that signed an https API's certificate, shipped by contents (a
    worker on another machine lacks the flow's file) and installed where the flow's
    settings say it is (:func:`shared_ca_path`).
    """

    name = PLUGIN_NAME

    def __init__(self, env: dict[str, str], ca_pem: bytes | None = None) -> None:
        self.env = dict(env)
        self.ca_pem = ca_pem

    def setup(self, worker) -> None:
        env = dict(self.env)
        if self.ca_pem:
            env[CA_ENV] = install_ca(self.ca_pem)
        apply_env(env)


def forwarded_env(api_url: str) -> dict[str, str]:
    env = {key: os.environ[key] for key in FORWARDED if os.environ.get(key)}
    env["PREFECT_API_URL"] = api_url
    return env


def _api_tls_context() -> ssl.SSLContext | None:
    """The trust Prefect's client uses here: its CA file, or none at all when told so."""
    if os.environ.get("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "").lower() in ("1", "true"):
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return context
    cafile = os.environ.get(CA_ENV)
    return ssl.create_default_context(cafile=cafile) if cafile else None


def missing_modules(names: list[str]) -> list[str]:
    """The top-level modules in ``names`` this worker cannot import."""
    for _ in range(5):
        try:
            importlib.invalidate_caches()  # sees a zip --upload-code just put on sys.path
            break
        except RuntimeError:  # another thread imported meanwhile (3.11 iterates a live dict)
            continue
    return [name for name in names if importlib.util.find_spec(name) is None]


def api_problem(api_url: str, timeout: float = 5.0) -> str | None:
    """None when the Prefect API answers its health check from here, else why not."""
    try:
        context = _api_tls_context() if api_url.startswith("https:") else None
        with urllib.request.urlopen(
            f"{api_url}/health", timeout=timeout, context=context
        ) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return f"{type(exc).__name__}: {exc}"


async def flush_logs(timeout: float = 10.0) -> None:
    """Send the task logs this worker still holds to the API.

    Async: ``Client.run`` calls it on the worker's event loop, where Prefect's
    ``drain_all`` returns an awaitable.
    """
    handlers = sys.modules.get("prefect.logging.handlers")
    if handlers is None:
        return
    waiting = handlers.APILogWorker.drain_all(timeout=timeout)
    if waiting is not None and hasattr(waiting, "__await__"):
        await waiting


cloudpickle.register_pickle_by_value(sys.modules[__name__])
