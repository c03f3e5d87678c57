"""Can this process use the configured Prefect API? One line that says why not, in seconds.

Prefect's client meets a wrong auth string, an untrusted certificate or an http URL
pointed at an https server only inside the run, as an httpx traceback (401,
``CERTIFICATE_VERIFY_FAILED``, "Server disconnected") that names no setting. One
authenticated request made the way Prefect's client makes it (its TLS settings, its
``Authorization`` header), before any cluster starts, tells the cases apart and says
which setting to change. ``ensure_server`` makes it, so ``train.py`` and ``serve.py``
(and any command that asks for the run's server) check the same way.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import ssl
from urllib.parse import urlsplit

import httpx

from prefect_sklearn_dask.ml.errors import UserError
from prefect_sklearn_dask.server.auth import AUTH_FILE, CLIENT_ENV
from prefect_sklearn_dask.server.tls import client_verify

TIMEOUT_S = 5.0
# Any authenticated GET would do; this one is small and exists on every Prefect 3 server.
PROBE_PATH = "/admin/version"


def auth_headers() -> dict[str, str]:
    """The ``Authorization`` header Prefect's client sends (auth string first, else API key)."""
    from prefect.settings import get_current_settings

    api = get_current_settings().api
    if api.auth_string and api.auth_string.get_secret_value():
        token = base64.b64encode(api.auth_string.get_secret_value().encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if api.key and api.key.get_secret_value():
        return {"Authorization": f"Bearer {api.key.get_secret_value()}"}
    return {}


def speaks_tls(host: str, port: int) -> bool:
    """True when ``host:port`` completes a TLS handshake (certificate not checked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=TIMEOUT_S) as sock,
            context.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def _unauthorized(api_url: str) -> UserError:
    where = f"$PREFECT_HOME/{AUTH_FILE} on the server's machine"
    if os.environ.get(CLIENT_ENV):
        return UserError(
            f"the Prefect API at {api_url} rejected the auth string in {CLIENT_ENV}; "
            f"set it to the server's (PREFECT_SERVER_API_AUTH_STRING, or {where})"
        )
    return UserError(
        f"the Prefect API at {api_url} requires authentication; set {CLIENT_ENV} to the "
        f"server's auth string (PREFECT_SERVER_API_AUTH_STRING, or {where})"
    )


def _tls_failure(api_url: str, exc: Exception) -> UserError | None:
    reason = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" not in reason and "certificate" not in reason.lower():
        return None
    detail = reason.split("certificate verify failed:")[-1]
    detail = re.sub(r"\s*\(_ssl\.c:\d+\)", "", detail).strip(" )]'\"") or "not trusted"
    return UserError(
        f"the Prefect API at {api_url} presents a certificate this machine does not "
        f"trust ({detail}); set PREFECT_API_SSL_CERT_FILE to the CA file that signed it"
    )


def require_api_access(api_url: str) -> None:
    """A :class:`UserError` unless an authenticated request to ``api_url`` succeeds."""
    url = api_url.rstrip("/")
    parts = urlsplit(url)
    try:
        response = httpx.get(
            url + PROBE_PATH, headers=auth_headers(), verify=client_verify(), timeout=TIMEOUT_S
        )
    except httpx.ConnectError as exc:
        raise (
            _tls_failure(url, exc)
            or UserError(
                f"the Prefect API at {url} (PREFECT_API_URL) does not answer; start that "
                "server or unset PREFECT_API_URL to use the project's own"
            )
        ) from None
    except httpx.TransportError as exc:
        if parts.scheme == "http" and parts.port and speaks_tls(parts.hostname, parts.port):
            https = parts._replace(scheme="https").geturl()
            raise UserError(
                f"the Prefect server at {url} speaks https, not http; set PREFECT_API_URL to "
                f"{https} (and PREFECT_API_SSL_CERT_FILE to the CA that signed its certificate)"
            ) from None
        raise UserError(
            f"the Prefect API at {url} (PREFECT_API_URL) does not answer ({type(exc).__name__}); "
            "check the URL, or unset PREFECT_API_URL to use the project's own server"
        ) from None
    if response.status_code in (401, 403):
        raise _unauthorized(url)
    if response.status_code != 200 and not _healthy(url):
        raise UserError(
            f"the Prefect API at {url} answered HTTP {response.status_code}; "
            "is PREFECT_API_URL the server's /api address?"
        )


def _healthy(url: str) -> bool:
    """Servers without the admin route (Prefect Cloud) still answer ``/health``."""
    try:
        response = httpx.get(f"{url}/health", verify=client_verify(), timeout=TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return response.status_code == 200
