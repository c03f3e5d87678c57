"""Adaptive scaling given as ``MIN:MAX`` on the command line or as a flow parameter."""

from __future__ import annotations

from typing import Any

from prefect_sklearn_dask.ml.errors import UserError


def parse_adapt(spec: str) -> dict[str, Any]:
    """``"1:8"`` -> ``cluster.adapt`` keyword arguments (``minimum``/``maximum`` workers)."""
    parts = str(spec).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        low, high = (int(p) for p in parts)
    except ValueError:
        raise UserError(
            f"--adapt must be MIN:MAX worker counts such as 1:8, got {spec!r}"
        ) from None
    if low < 0 or high < 1 or low > high:
        raise UserError(
            f"--adapt needs 0 <= MIN <= MAX and MAX >= 1, got {spec!r} (MIN={low}, MAX={high})"
        )
    return {"minimum": low, "maximum": high}
