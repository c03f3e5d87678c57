"""The auth string of a Prefect server that listens beyond this machine.

Prefect's open-source server checks HTTP basic authentication against
``PREFECT_SERVER_API_AUTH_STRING``; clients send ``PREFECT_API_AUTH_STRING``. Bound to
anything but loopback, an open server lets whoever reaches the port read every run,
parameter and log and start flow runs (code on the workers). So a wide start always
has an auth string: the one in ``PREFECT_SERVER_API_AUTH_STRING`` when set, else the
one stored in ``$PREFECT_HOME/server-auth-string`` (owner-only), else a fresh one
generated and stored there. Only the file's path is ever printed.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from prefect_sklearn_dask.cli import LOOPBACK
from prefect_sklearn_dask.ml.errors import UserError

SERVER_ENV = "PREFECT_SERVER_API_AUTH_STRING"
CLIENT_ENV = "PREFECT_API_AUTH_STRING"
AUTH_FILE = "server-auth-string"
INSECURE_FLAG = "--insecure-no-auth"
# 32 random bytes, URL-safe: 43 characters, 256 bits.
TOKEN_BYTES = 32


def auth_file(home: Path) -> Path:
    return home / AUTH_FILE


def _read_private(path: Path) -> str:
    """The stored string; refused (as ssh does with keys) when others can read the file."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}` or delete it to have a new auth string generated"
        )
    value = path.read_text().strip()
    if not value:
        raise UserError(f"{path} is empty; delete it to have a new auth string generated")
    return value


def _write_private(path: Path, value: str) -> None:
    """Create ``path`` with mode 0600 from the start (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UserError(
            f"cannot store a generated auth string in {path} ({exc.strerror}); set "
            f"{SERVER_ENV} yourself or make $PREFECT_HOME writable"
        ) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


def stored_or_new(home: Path) -> tuple[str, bool]:
    """The auth string stored under ``home``, or a new one stored there; True if new."""
    path = auth_file(home)
    if path.exists():
        return _read_private(path), False
    value = secrets.token_urlsafe(TOKEN_BYTES)
    _write_private(path, value)
    return value, True


def server_auth_string(host: str, home: Path, insecure_no_auth: bool = False) -> str | None:
    """The auth string the server at ``host`` must require; None: no authentication.

    Loopback keeps Prefect's default (none, unless ``PREFECT_SERVER_API_AUTH_STRING`` is
    set). Wide binds get one unless ``--insecure-no-auth`` is given; an empty
    ``PREFECT_SERVER_API_AUTH_STRING`` asks for none, so without the flag it is refused.
    """
    configured = os.environ.get(SERVER_ENV)
    if configured:
        return configured
    if host in LOOPBACK or insecure_no_auth:
        return None
    if configured is not None:
        raise UserError(
            f"{SERVER_ENV} is empty, which would leave a server on {host} open to anyone "
            f"who reaches it; unset it to have an auth string generated and stored under "
            f"$PREFECT_HOME, set it to a long random string, or pass {INSECURE_FLAG} "
            "(trusted networks only)"
        )
    value, _ = stored_or_new(home)
    return value


def client_hint(home: Path) -> str:
    """How clients and workers get the auth string, naming where it is, never its value."""
    if os.environ.get(SERVER_ENV):
        return f"clients and workers: export {CLIENT_ENV} with the value of {SERVER_ENV}"
    path = auth_file(home)
    return (
        f'authentication on; clients: export {CLIENT_ENV}="$(cat {path})" '
        "(train.py hands it to the Dask workers)"
    )
