"""Connecting to a Dask scheduler that someone else started, failing fast and clearly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ml.errors import UserError

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


def normalize_address(address: str) -> str:
    """``host:port`` -> ``tcp://host:port``, as ``dask worker`` accepts it."""
    address = address.strip()
    return address if "://" in address else f"tcp://{address}"


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> int:
    """Connect to the scheduler at ``address`` and return its worker count.

    Raises a :class:`UserError` naming the address and the fix when it is malformed,
    unreachable or has no workers, instead of a hang or a traceback later in the run.
    """
    from distributed import Client
    from distributed.comm import get_address_host_port

    address = normalize_address(address)
    try:
        get_address_host_port(address)
    except ValueError:
        raise UserError(
            f"malformed Dask scheduler address {address!r}; use e.g. tcp://127.0.0.1:8786"
        ) from None
    try:
        with _quiet(), Client(address, timeout=timeout, set_as_default=False) as client:
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
    except (OSError, TimeoutError) as exc:
        raise UserError(
            f"cannot reach a Dask scheduler at {address} within {timeout:.0f} s "
            f"({type(exc).__name__}); start one (`dask scheduler` + `dask worker ADDRESS`) "
            "or drop --address"
        ) from None
    if workers == 0:
        raise UserError(
            f"the Dask scheduler at {address} has no workers; start `dask worker {address}`"
        )
    return workers
