"""A flow's failure message, as the server stores and automations forward it, without secrets.

Prefect turns the exception that ends a flow run into the Failed state's message
(``format_exception``: type and ``str(exc)``); the server keeps it and a notification
template (``{{ flow_run.state.message }}``) sends it on. Masking log records does not
reach it, so the exception's text is masked where it leaves the flow function.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect_sklearn_dask.masking import mask

P = ParamSpec("P")
R = TypeVar("R")


def mask_exception(exc: BaseException) -> BaseException:
    """``exc`` itself (same type, same traceback) with a secret-free message."""
    text = str(exc)
    masked = mask(text)
    if masked != text:
        exc.args = (masked,)
    return exc


def masked_failures(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap a flow function so the exception it raises carries a masked message."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise mask_exception(exc)  # noqa: B904 - the same exception, re-raised

    return wrapper
