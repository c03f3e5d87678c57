"""Persist the best model as a Prefect result (joblib-serialised) and load it back safely.

The model is written in Prefect's result-record format through a ``ResultStore`` on
local storage (``$PREFECT_HOME/storage`` by default), atomically (temp file, then
rename), beside a JSON manifest holding its sha256. Loading checks the hash before
unpickling anything, so a changed or truncated file is refused, not executed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
from prefect.filesystems import LocalFileSystem
from prefect.results import ResultRecord, ResultStore
from prefect.serializers import Serializer
from pydantic import Field

from prefect_sklearn_dask.ml.errors import UserError

MODEL_DIR = "train-flow"
LATEST = "latest.json"


class JoblibSerializer(Serializer):
    """scikit-learn's recommended persistence (joblib) as a Prefect result serializer."""

    type: str = Field(default="joblib", frozen=True)
    compress: int = 3

    def dumps(self, obj: Any) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(obj, buffer, compress=self.compress)
        return base64.encodebytes(buffer.getvalue())

    def loads(self, blob: bytes) -> Any:
        return joblib.load(io.BytesIO(base64.decodebytes(blob)))


@dataclass(frozen=True)
class StoredModel:
    """Where a persisted model lives and how to check it."""

    record_path: Path
    manifest_path: Path
    sha256: str


def default_storage() -> Path:
    """Prefect's local result storage path (``$PREFECT_HOME/storage`` unless overridden)."""
    from prefect.settings import get_current_settings

    return Path(get_current_settings().results.local_storage_path).expanduser()


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: Any, manifest: dict[str, Any], storage: Path, run_id: str) -> StoredModel:
    """Persist ``model`` as a Prefect result record plus a manifest; update ``latest.json``."""
    store = ResultStore(
        result_storage=LocalFileSystem(basepath=str(storage)), serializer=JoblibSerializer()
    )
    record = store.create_result_record(model, key=f"{MODEL_DIR}/{run_id}/best-model.joblib")
    data = record.serialize()
    record_path = Path(record.metadata.storage_key)
    write_atomic(record_path, data)
    digest = hashlib.sha256(data).hexdigest()
    full = {
        **manifest,
        "record_path": str(record_path),
        "sha256": digest,
        "serializer": "joblib",
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    body = json.dumps(full, indent=2, default=str).encode()
    manifest_path = record_path.with_name("best-model.json")
    write_atomic(manifest_path, body)
    write_atomic(storage / MODEL_DIR / LATEST, body)
    return StoredModel(record_path, manifest_path, digest)


def read_manifest(location: Path) -> dict[str, Any]:
    """A manifest from its path, a run folder, or a storage folder (its latest model)."""
    candidates = [location, location / "best-model.json", location / MODEL_DIR / LATEST]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"model manifest {str(candidate)!r} is not valid JSON: {exc}"
                ) from None
    raise UserError(
        f"no saved model at {str(location)!r}; run `python flows/train.py` first "
        "or pass --model PATH/best-model.json"
    )


def load_model(location: Path) -> tuple[Any, dict[str, Any]]:
    """The fitted pipeline and its manifest, after checking the file's sha256."""
    manifest = read_manifest(location)
    record_path = Path(manifest["record_path"])
    if not record_path.is_file():
        raise UserError(f"model file {str(record_path)!r} named by the manifest is missing")
    data = record_path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != manifest["sha256"]:
        raise UserError(
            f"model file {str(record_path)!r} does not match its recorded sha256 "
            f"({digest[:12]}... != {manifest['sha256'][:12]}...); it changed after saving, "
            "re-train or restore it"
        )
    return ResultRecord.deserialize(data).result, manifest
