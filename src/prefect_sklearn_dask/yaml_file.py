"""Read a user's YAML file, with the one-line errors every command gives for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect_sklearn_dask.ml.errors import UserError


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed file; a missing file or invalid YAML is a UserError naming ``what``."""
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{what} {str(file)!r} not found")
    try:
        return yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", exc)
        raise UserError(f"{what} {file}: is not valid YAML{line}: {problem}") from None
