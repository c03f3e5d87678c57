"""Connecting to a Dask scheduler that someone else started, failing fast and clearly."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from prefect_sklearn_dask.ml.errors import UserError

if TYPE_CHECKING:
    from distributed import Client, Security

CONNECT_TIMEOUT_S = 5.0


@contextmanager
def _quiet(logger_names: tuple[str, ...] = ("distributed", "tornado")) -> Iterator[None]:
    """Silence distributed's own connection-retry logging; we report one line instead."""
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def normalize_address(address: str, tls: bool = False) -> str:
    """``host:port`` -> ``tcp://host:port`` (``tls://`` when TLS files are given)."""
    address = address.strip()
    if "://" in address:
        return address
    return f"{'tls' if tls else 'tcp'}://{address}"


def tls_security(ca: str | None, cert: str | None, key: str | None) -> Security | None:
    """A ``distributed.Security`` from the three PEM files, checked before any connection.

    All three or none: a client certificate without the CA (or the reverse) would
    fail later as an opaque handshake error.
    """
    given = {"--tls-ca": ca, "--tls-cert": cert, "--tls-key": key}
    if not any(given.values()):
        return None
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        raise UserError(
            f"TLS needs --tls-ca, --tls-cert and --tls-key; missing {', '.join(missing)}"
        )
    for flag, value in given.items():
        if not Path(value).expanduser().is_file():
            raise UserError(f"{flag} file {value!r} not found")
    ca, cert, key = (str(Path(v).expanduser()) for v in (ca, cert, key))
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except ssl.SSLError as exc:
        raise UserError(f"--tls-ca {ca!r} is not a PEM CA certificate ({exc.reason})") from None
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise UserError(
            f"--tls-cert {cert!r} and --tls-key {key!r} are not a matching PEM certificate "
            f"and private key ({exc.reason})"
        ) from None
    from distributed import Security

    return Security(
        tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True
    )


def check_address(address: str, security: Security | None = None) -> str:
    """The normalized address, or a :class:`UserError` when it is malformed or mismatched."""
    from distributed.comm import get_address_host_port

    address = normalize_address(address, tls=security is not None)
    try:
        get_address_host_port(address)
    except ValueError:
        raise UserError(
            f"malformed Dask scheduler address {address!r}; use e.g. tcp://127.0.0.1:8786"
        ) from None
    scheme = address.split("://", 1)[0]
    if security is not None and scheme != "tls":
        raise UserError(f"--tls-* files were given but the address {address!r} is not tls://")
    if security is None and scheme == "tls":
        raise UserError(f"{address} is a TLS scheduler: pass --tls-ca, --tls-cert and --tls-key")
    return address


def check_scheduler(
    address: str,
    timeout: float = CONNECT_TIMEOUT_S,
    security: Security | None = None,
    probe: Callable[[Client], None] | None = None,
) -> int:
    """Connect to the scheduler at ``address`` and return its worker count.

    Raises a :class:`UserError` naming the address and the fix when it is malformed,
    unreachable, refuses our TLS credentials or has no workers, instead of a hang or a
    traceback later in the run. ``probe(client)`` may check the workers further.
    """
    from distributed import Client

    address = check_address(address, security)
    try:
        with (
            _quiet(),
            Client(address, timeout=timeout, set_as_default=False, security=security) as client,
        ):
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            if workers and probe is not None:
                probe(client)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        hint = (
            "check that --tls-ca signed the scheduler's certificate and that the scheduler "
            "trusts --tls-cert"
            if security is not None
            else "start one (`dask scheduler` + `dask worker ADDRESS`) or drop --address"
        )
        raise UserError(
            f"cannot reach a Dask scheduler at {address} within {timeout:.0f} s "
            f"({type(exc).__name__}); {hint}"
        ) from None
    if workers == 0:
        raise UserError(
            f"the Dask scheduler at {address} has no workers; start `dask worker {address}`"
        )
    return workers
