"""Partitioned input: the files behind a ``--dataset`` directory, glob or fsspec URL.

:func:`open_source` runs in the caller's process and reads only what each file says about
itself (a Parquet footer, a CSV header and a few rows): the file list, the columns and
their kinds, row counts and the target's min/max where Parquet keeps statistics. Files
that disagree, cannot be read or lack the target are a :class:`~.errors.DataError` naming
the file, before any cluster work. :meth:`PartitionedSource.frame` is the lazy
``dask.dataframe`` the workers read, one partition per :class:`Piece` (a file, or a run
of a big Parquet file's row groups), so a partition always knows its file: a partition
that fails to read names it, and rows get stable ids (file order, then row order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prefect_sklearn_dask.ml.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
GLOB_CHARS = "*?["
ROW_ID = "row_id"
# Row groups are merged into one partition up to this many uncompressed bytes: small
# enough that a worker holds several, big enough that the per-partition cost is small.
PIECE_BYTES = 128 * 2**20
CSV_SAMPLE_ROWS = 1000
NUMBER, BOOL, CATEGORY, EMPTY = "number", "bool", "category", "empty"


@dataclass(frozen=True)
class Piece:
    """One partition: a file, or some of a Parquet file's row groups (``offset``: the
    global number of its first row, known from metadata; None for CSV until counted)."""

    path: str
    row_groups: tuple[int, ...] | None = None
    rows: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class PartitionedSource:
    """A small, picklable handle to partitioned data: where it is and what it holds.

    ``kinds`` maps each column to number/bool/category (or empty: null in every file read
    so far). ``storage_options`` go to fsspec in every process that reads (kept out of
    ``repr``: they may hold credentials); without them each process uses its own
    environment (``AWS_*``, ``FSSPEC_S3_*``...), as workers on other machines must.
    """

    dataset: str
    target: str
    format: str
    pieces: tuple[Piece, ...]
    kinds: tuple[tuple[str, str], ...]
    fingerprint: str
    target_range: tuple[Any, Any] | None = None
    storage_options: tuple[tuple[str, Any], ...] = field(default=(), repr=False)

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.kinds]

    def require(self, columns: list[str]) -> None:
        """Refuse data that lacks columns a model was trained on, naming them."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise DataError(
                f"{self.dataset!r} lacks column(s) the model was trained on: "
                f"{', '.join(missing[:10])}"
            )

    @property
    def features(self) -> list[str]:
        return [name for name, _ in self.kinds if name != self.target]

    @property
    def files(self) -> list[str]:
        return list(dict.fromkeys(piece.path for piece in self.pieces))

    @property
    def n_rows(self) -> int | None:
        """Rows in all files, from metadata (None for CSV until counted)."""
        rows = [piece.rows for piece in self.pieces]
        return None if None in rows else int(sum(rows))

    def kind(self, column: str) -> str:
        return dict(self.kinds)[column]

    def filesystem(self):
        import fsspec

        fs, _ = fsspec.core.url_to_fs(self.dataset, **dict(self.storage_options))
        return fs

    def with_row_counts(self, counts: Iterable[int]) -> PartitionedSource:
        """The same source with each piece's row count and offset (CSV, once counted)."""
        pieces, offset = [], 0
        for piece, rows in zip(self.pieces, counts, strict=True):
            pieces.append(replace(piece, rows=int(rows), offset=offset))
            offset += int(rows)
        return replace(self, pieces=tuple(pieces))

    def meta(self, dtypes: dict[str, Any] | None = None) -> pd.DataFrame:
        """The empty frame every partition matches (``dtypes`` override, e.g. categories)."""
        dtypes = dtypes or {}
        frame = pd.DataFrame(
            {
                name: pd.Series(
                    [], dtype=dtypes.get(name, object if name == self.target else _dtype(kind))
                )
                for name, kind in self.kinds
            }
        )
        frame[ROW_ID] = pd.Series([], dtype="int64")
        return frame

    def frame(self, dtypes: dict[str, Any] | None = None):
        """The lazy ``dask.dataframe``: one partition per piece, read on the workers, with
        a ``row_id`` column (the row's number in file order) and ``dtypes`` applied."""
        import dask.dataframe as dd

        reader = PieceReader(self, dict(dtypes or {}))
        return dd.from_map(
            reader,
            list(self.pieces),
            meta=self.meta(dtypes),
            divisions=None,
            label="read-partition",
            enforce_metadata=False,
        )


def _dtype(kind: str) -> Any:
    return {NUMBER: "float32", BOOL: "float32", CATEGORY: object, EMPTY: "float32"}[kind]


class PieceReader:
    """Reads one piece on a worker and makes it match the source's meta; any failure is
    a ``DataError`` naming the file (a worker's traceback would not)."""

    def __init__(self, source: PartitionedSource, dtypes: dict[str, Any]) -> None:
        self.source = source
        self.dtypes = dtypes

    def __call__(self, piece: Piece) -> pd.DataFrame:
        source = self.source
        try:
            raw = _read(source.filesystem(), source.format, piece, source.columns)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"cannot read partition {piece.path!r}: {_first_line(exc)}") from None
        return conform(raw, source, piece, self.dtypes)


def _read(fs, fmt: str, piece: Piece, columns: list[str]) -> pd.DataFrame:
    with fs.open(piece.path, "rb") as handle:
        if fmt == "csv":
            return pd.read_csv(handle)
        parquet = pq.ParquetFile(handle)
        groups = piece.row_groups
        table = (
            parquet.read(columns=columns)
            if groups is None
            else parquet.read_row_groups(list(groups), columns=columns)
        )
    return table.to_pandas()


def conform(
    raw: pd.DataFrame, source: PartitionedSource, piece: Piece, dtypes: dict[str, Any]
) -> pd.DataFrame:
    """Columns in the source's order and kinds: numbers as float32, categories as text
    (or ``dtypes``' fixed categories), the target as read unless ``dtypes`` fixes its
    classes; a column that does not fit names the file."""
    missing = [c for c in source.columns if c not in raw.columns]
    if missing:
        raise DataError(
            f"partition {piece.path!r} lacks column(s) {', '.join(missing[:10])} "
            "that the other files have"
        )
    out: dict[str, Any] = {}
    for name, kind in source.kinds:
        column = raw[name]
        try:
            if name in dtypes:
                out[name] = _categorical(column, dtypes[name])
            elif name == source.target:
                out[name] = column  # its classes are counted as they are (profile.py)
            elif kind in (NUMBER, BOOL, EMPTY):
                out[name] = pd.to_numeric(column, errors="raise").astype("float32")
            else:
                out[name] = column.astype(object).where(column.notna(), None)
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"column {name!r} of {piece.path!r} does not hold {kind} values: {_first_line(exc)}"
            ) from None
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(raw)))
    start = piece.offset or 0
    frame[ROW_ID] = np.arange(start, start + len(frame), dtype="int64")
    return frame


def _categorical(column: pd.Series, dtype: Any) -> pd.Series:
    if isinstance(dtype, pd.CategoricalDtype):
        values = column.astype(object).where(column.notna(), None)
        return pd.Series(pd.Categorical(values, dtype=dtype), index=column.index)
    return column.astype(dtype)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_partitioned_source(dataset: str) -> bool:
    """A URL of a filesystem fsspec knows (``s3://``, ``file://``...), a glob, or a local
    directory; a single local file stays in-memory data (today's behaviour), and so does
    any other URL (a database URL is refused there, its password masked)."""
    from pathlib import Path

    if "://" in dataset:
        from fsspec.registry import known_implementations

        return dataset.split("://", 1)[0].lower() in known_implementations
    if any(ch in dataset for ch in GLOB_CHARS):
        return True
    return Path(dataset).expanduser().is_dir()


def list_files(dataset: str, storage_options: dict[str, Any]) -> tuple[Any, list[str]]:
    """The filesystem and the data files behind ``dataset``, sorted: a directory's
    Parquet/CSV files (recursively, skipping ``_*``/``.*`` such as ``_SUCCESS``), a glob's
    matches, or one file."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(dataset, **storage_options)
    except (ImportError, ValueError) as exc:
        raise DataError(f"cannot open {dataset!r}: {_first_line(exc)}") from None
    try:
        if any(ch in path for ch in GLOB_CHARS):
            found = fs.glob(path)
        elif fs.isdir(path):
            found = [p for p in fs.find(path) if _is_data_file(p)]
        elif fs.isfile(path):
            found = [path]
        else:
            raise DataError(f"{dataset!r} not found; give a directory, a glob or a file URL")
    except DataError:
        raise
    except Exception as exc:  # network, permissions, unknown bucket
        raise DataError(f"cannot list {dataset!r}: {_first_line(exc)}") from None
    files = sorted(p for p in found if not fs.isdir(p))
    if not files:
        raise DataError(f"no Parquet or CSV files in {dataset!r}")
    return fs, [_full_path(fs, p) for p in files]


def _full_path(fs, path: str) -> str:
    """A URL for remote files (workers elsewhere open it as given), a plain path for
    local ones (what the user typed, in error messages too)."""
    if "://" in path:
        return path
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return path if {"file", "local"} & set(protocols) else fs.unstrip_protocol(path)


def _is_data_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return not name.startswith(("_", ".")) and name.lower().endswith(
        PARQUET_SUFFIXES + CSV_SUFFIXES
    )


def file_format(files: list[str]) -> str:
    """``parquet`` or ``csv``: one format per dataset."""
    formats = {
        "parquet"
        if f.lower().endswith(PARQUET_SUFFIXES)
        else "csv"
        if f.lower().endswith(CSV_SUFFIXES)
        else None
        for f in files
    }
    if None in formats:
        odd = next(f for f in files if not f.lower().endswith(PARQUET_SUFFIXES + CSV_SUFFIXES))
        raise DataError(f"{odd!r} is neither .parquet nor .csv; keep only data files there")
    if len(formats) > 1:
        raise DataError("the files mix Parquet and CSV; use one format per dataset")
    return formats.pop()


@dataclass(frozen=True)
class FileInfo:
    """What one file's metadata says: its columns' kinds, row groups and target range."""

    path: str
    kinds: dict[str, str]
    pieces: list[Piece]
    target_range: tuple[Any, Any] | None
    identity: str


def arrow_kind(path: str, name: str, typ: pa.DataType) -> str:
    """number/bool/category/empty for an Arrow type; dates and nested types are refused."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_boolean(typ):
        return BOOL
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return NUMBER
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return CATEGORY
    if pa.types.is_null(typ):
        return EMPTY
    if pa.types.is_temporal(typ):
        raise DataError(
            f"column {name!r} of {path!r} holds dates/times ({typ}); "
            "convert it to numbers (e.g. a timestamp) or drop it"
        )
    raise DataError(f"column {name!r} of {path!r} has type {typ}, not numbers or text; drop it")


def pandas_kind(path: str, name: str, column: pd.Series) -> str:
    """The kind of a CSV column from a sample of its rows."""
    if column.isna().all():
        return EMPTY
    if pd.api.types.is_bool_dtype(column):
        return BOOL
    if pd.api.types.is_numeric_dtype(column):
        return NUMBER
    return CATEGORY


def parquet_info(fs, path: str, target: str | None) -> FileInfo:
    try:
        with fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            metadata, schema = parquet.metadata, parquet.schema_arrow
    except Exception as exc:
        raise DataError(f"cannot read partition {path!r}: {_first_line(exc)}") from None
    kinds = {name: arrow_kind(path, name, schema.field(name).type) for name in schema.names}
    pieces, group, size, offset = [], [], 0, 0
    for index in range(metadata.num_row_groups):
        row_group = metadata.row_group(index)
        group.append(index)
        size += row_group.total_byte_size
        if size >= PIECE_BYTES or index == metadata.num_row_groups - 1:
            rows = sum(metadata.row_group(i).num_rows for i in group)
            pieces.append(Piece(path, tuple(group), rows, offset))
            offset, group, size = offset + rows, [], 0
    if not pieces:  # a file with a schema and no row groups
        pieces.append(Piece(path, (), 0, 0))
    target_range = _target_range(metadata, schema, target)
    return FileInfo(path, kinds, pieces, target_range, _identity(fs, path))


def _target_range(metadata, schema: pa.Schema, target: str | None) -> tuple[Any, Any] | None:
    """min and max of the target over the file from row-group statistics, if all have them."""
    if target is None or target not in schema.names or metadata.num_row_groups == 0:
        return None
    column = schema.get_field_index(target)
    lows, highs = [], []
    for index in range(metadata.num_row_groups):
        chunk = metadata.row_group(index).column(column)
        stats = chunk.statistics
        if chunk.num_values == 0:
            continue
        if stats is None or not stats.has_min_max or stats.null_count:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    return (min(lows), max(highs)) if lows else None


def csv_info(fs, path: str) -> FileInfo:
    try:
        with fs.open(path, "rb") as handle:
            sample = pd.read_csv(handle, nrows=CSV_SAMPLE_ROWS)
    except pd.errors.EmptyDataError:
        raise DataError(f"partition {path!r} is empty; it needs a header and rows") from None
    except Exception as exc:
        raise DataError(f"cannot read partition {path!r}: {_first_line(exc)}") from None
    kinds = {str(c): pandas_kind(path, str(c), sample[c]) for c in sample.columns}
    return FileInfo(path, kinds, [Piece(path)], None, _identity(fs, path))


def _identity(fs, path: str) -> str:
    """Path, size and version (ETag or mtime): enough to notice a changed file without
    reading it, which hashing terabytes would need."""
    info = fs.info(path)
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return f"{path}|{info.get('size')}|{version}"


def unify(
    infos: list[FileInfo], target: str | None, dataset: str, need_target: bool = True
) -> dict[str, str]:
    """One set of columns and kinds for all files, or an error naming the first file that
    disagrees with the first (and, with ``need_target``, one that lacks the target)."""
    first = infos[0]
    kinds = dict(first.kinds)
    for info in infos[1:]:
        missing = [c for c in kinds if c not in info.kinds]
        extra = [c for c in info.kinds if c not in kinds]
        if missing or extra:
            said = []
            if missing:
                said.append(f"lacks {', '.join(missing[:10])}")
            if extra:
                said.append(f"has extra {', '.join(extra[:10])}")
            raise DataError(
                f"partition {info.path!r} {' and '.join(said)} compared with {first.path!r}; "
                "every file needs the same columns"
            )
        for name, kind in info.kinds.items():
            kinds[name] = _merge_kind(kinds[name], kind, name, info.path, first.path)
    if not need_target:
        return kinds
    if target is None:
        raise DataError(f"pass --target COLUMN for {dataset!r}; its columns are: {_names(kinds)}")
    if target not in kinds:
        raise DataError(
            f"target column {target!r} not in {first.path!r}; its columns are: {_names(kinds)}"
        )
    if len(kinds) < 2:
        raise DataError(f"dataset {dataset!r} has no feature columns besides the target")
    return kinds


def _merge_kind(kind: str, other: str, name: str, path: str, first: str) -> str:
    if EMPTY in (kind, other):
        return other if kind == EMPTY else kind
    if kind == other or {kind, other} == {NUMBER, BOOL}:
        return NUMBER if kind != other else kind
    raise DataError(
        f"column {name!r} holds {other} values in {path!r} but {kind} values in {first!r}; "
        "make it the same in every file"
    )


def _names(kinds: dict[str, str], limit: int = 20) -> str:
    names = list(kinds)
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f", ... (+{more})" if more > 0 else "")


def open_source(
    dataset: str,
    target: str | None,
    storage_options: dict[str, Any] | None = None,
    need_target: bool = True,
) -> PartitionedSource:
    """Check a partitioned dataset from its files' metadata (no rows are loaded here).
    ``need_target=False``: rows to predict, which may lack the target."""
    storage_options = dict(storage_options or {})
    fs, files = list_files(dataset, storage_options)
    fmt = file_format(files)
    with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
        reader = (
            (lambda p: parquet_info(fs, p, target))
            if fmt == "parquet"
            else (lambda p: csv_info(fs, p))
        )
        infos = list(pool.map(reader, files))
    kinds = unify(infos, target, dataset, need_target)
    pieces, offset = [], 0
    for info in infos:
        for piece in info.pieces:
            if piece.rows is None:
                pieces.append(piece)
                continue
            pieces.append(replace(piece, offset=offset))
            offset += piece.rows
    digest = hashlib.sha256(f"{fmt}|target={target}".encode())
    for info in infos:
        digest.update(info.identity.encode())
    ranges = [info.target_range for info in infos]
    target_range = None
    if ranges and None not in ranges:
        target_range = (min(r[0] for r in ranges), max(r[1] for r in ranges))
    source = PartitionedSource(
        dataset=dataset,
        target=str(target) if target is not None else "",
        format=fmt,
        pieces=tuple(pieces),
        kinds=tuple(kinds.items()),
        fingerprint=digest.hexdigest(),
        target_range=target_range,
        storage_options=tuple(sorted(storage_options.items())),
    )
    check_metadata(source)
    return source


def check_metadata(source: PartitionedSource) -> None:
    """What metadata alone can refuse: no rows, or one class by the files' statistics."""
    if source.n_rows == 0:
        raise DataError(f"dataset {source.dataset!r} has no rows")
    low_high = source.target_range
    if low_high is not None and low_high[0] == low_high[1]:
        raise DataError(
            f"target column {source.target!r} has one class ({low_high[0]!r}) in every file "
            f"of {source.dataset!r}; classification needs at least two"
        )
