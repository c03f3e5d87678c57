"""The Prefect server over https, and the TLS trust its clients use.

``prefect server start`` has no TLS options; :mod:`.app` serves the same app (API,
UI, services) under uvicorn's ``ssl_certfile``/``ssl_keyfile`` after :func:`check_pair`
accepted them. Clients trust it through Prefect's own ``PREFECT_API_SSL_CERT_FILE``
(a CA file), which :func:`client_verify` reads too.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from prefect_sklearn_dask.ml.errors import UserError


def check_pair(cert: str | None, key: str | None) -> tuple[str, str] | None:
    """Both or neither of ``--tls-cert``/``--tls-key``, readable, and matching."""
    if not cert and not key:
        return None
    if not (cert and key):
        raise UserError("--tls-cert and --tls-key go together: give both PEM files")
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise UserError(f"{flag} {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, ValueError) as exc:
        raise UserError(
            f"--tls-cert {cert} and --tls-key {key} are not a PEM certificate and its "
            f"private key ({exc.__class__.__name__}: {exc})"
        ) from None
    return str(Path(cert).resolve()), str(Path(key).resolve())


def client_verify() -> ssl.SSLContext:
    """The TLS context Prefect's own client builds from its settings (``PrefectClient``)."""
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    if api.tls_insecure_skip_verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if api.ssl_cert_file:
        return ssl.create_default_context(cafile=api.ssl_cert_file)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def share_ca_with_workers() -> None:
    """Trust the API through a copy of the CA at the path its workers will use too.

    Prefect ships the flow's settings, ``PREFECT_API_SSL_CERT_FILE`` included, with every
    task; a worker on another machine lacks the flow's file. The worker plugin installs
    the same contents at :func:`~prefect_sklearn_dask.bridge.worker_env.shared_ca_path`,
    so the flow uses that path from the start.
    """
    import os

    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings

    from prefect_sklearn_dask.bridge.worker_env import CA_ENV, install_ca

    current = get_current_settings().api.ssl_cert_file
    if not current or not Path(current).is_file():
        return
    shared = install_ca(Path(current).read_bytes())
    if shared != current:
        os.environ[CA_ENV] = shared
        refresh_global_settings_context()
