"""File formats of import and export: which format a path means, the batch of items every
reader yields and every writer takes, and the atomic output file every writer fills.

Formats (chosen by ``format=`` or else by the path's suffix, case-insensitively):

    "jsonl"    .jsonl .ndjson, and compressed .jsonl.gz .ndjson.gz .jsonl.zst .ndjson.zst
               one JSON object per line (format_jsonl.py)
    "parquet"  .parquet .pq; needs pyarrow (format_parquet.py)
    "npy"      .npy: the vectors only, float32 [n, dim] (format_npy.py)

Compression of JSONL follows the suffix (``.gz``, ``.zst``) whatever ``format=`` says.

Invariants:
 1. A reader yields ``Items`` of at most batch_size items, in file order, holding only what
    it has parsed and checked; it never holds more than one batch (constant memory).
 2. Every reader error names the file and the line (JSONL, counted from 1) or row (Parquet,
    .npy, counted from 0) it is about.
 3. A writer writes only to ``<path>.partial``; ``atomic_output`` renames it to path after
    the last batch and an fsync, and removes it on any failure: path holds either its old
    content or the whole export, never a part.

    >>> detect("items.jsonl.gz", None)
    ('jsonl', 'gz')
    >>> detect("vectors.bin", "npy")
    ('npy', None)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, NotFoundError

FORMATS = ("jsonl", "parquet", "npy")
_SUFFIXES = (  # longest first
    (".jsonl.gz", "jsonl", "gz"), (".ndjson.gz", "jsonl", "gz"),
    (".jsonl.zst", "jsonl", "zst"), (".ndjson.zst", "jsonl", "zst"),
    (".jsonl", "jsonl", None), (".ndjson", "jsonl", None),
    (".parquet", "parquet", None), (".pq", "parquet", None), (".npy", "npy", None),
)
PARTIAL_SUFFIX = ".partial"
PARQUET_HINT = "pip install 'vecdb[parquet]' (or pip install pyarrow)"


@dataclass
class Items:
    """One batch of items read from a file or a collection: parallel lists, and where each
    item came from (``positions``: JSONL line numbers; None: rows first, first + 1, ...)."""

    ids: list
    vectors: np.ndarray                 # [n, dim] (float32 from a collection)
    metadatas: list[dict | None]
    documents: list[str | None]
    first: int = 0
    positions: list[int] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def position(self, i: int) -> int:
        return self.positions[i] if self.positions is not None else self.first + i


def check_path(path: Any, name: str = "path", kind: str = "file path") -> str:
    """path as a str, or InvalidArgumentError naming it (and the kind of path expected)."""
    if isinstance(path, (str, os.PathLike)):
        text = os.fspath(path)
        if isinstance(text, str) and text:
            return text
    raise InvalidArgumentError(f"{name}: expected a {kind} (str or os.PathLike), got "
                               f"{path!r}")


def detect(path: str, format: str | None) -> tuple[str, str | None]:
    """(format, compression) of path: format= when given, else its suffix.

    >>> detect("a.PARQUET", None)
    ('parquet', None)
    """
    lower = os.path.basename(path).lower()
    compression = None
    suffix_format = None
    for suffix, fmt, comp in _SUFFIXES:
        if lower.endswith(suffix):
            suffix_format, compression = fmt, comp
            break
    if format is not None:
        if format not in FORMATS:
            raise InvalidArgumentError(f"format: expected one of {FORMATS} or None, got "
                                       f"{format!r}")
        if format == "jsonl" and compression is None:
            compression = {".gz": "gz", ".zst": "zst"}.get(os.path.splitext(lower)[1])
        return format, compression if format == "jsonl" else None
    if suffix_format is None:
        raise InvalidArgumentError(
            f"path: cannot tell the format of {path!r} from its suffix (known: "
            f"{', '.join(s for s, _, _ in _SUFFIXES)}); give format= one of {FORMATS}")
    return suffix_format, compression


def check_source(path: str) -> str:
    """path, which must be an existing regular file (else NotFoundError naming it)."""
    if not os.path.exists(path):
        raise NotFoundError(f"path: no such file {path!r}")
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"path: {path!r} is not a regular file")
    return path


def check_target(path: str) -> str:
    """path, where a new file can be written (its folder exists; it is no folder itself)."""
    if os.path.isdir(path):
        raise InvalidArgumentError(f"path: {path!r} is a directory; give a file path")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise NotFoundError(f"path: the folder {folder!r} of {path!r} does not exist")
    return path


def pyarrow() -> Any:
    """The pyarrow module (with pyarrow.parquet and pyarrow.compute loaded), or an
    InvalidArgumentError saying how to install it: Parquet support is an optional extra."""
    try:
        import pyarrow as pa
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError:
        raise InvalidArgumentError(f"format: Parquet files need pyarrow: {PARQUET_HINT}") \
            from None
    return pa


@contextmanager
def atomic_output(path: str) -> Iterator[str]:
    """Yields the path of a fresh ``<path>.partial`` to fill; on a normal exit fsyncs it and
    renames it to path (then fsyncs the folder); on an error removes it (invariant 3)."""
    partial = path + PARTIAL_SUFFIX
    try:
        if os.path.exists(partial):
            os.remove(partial)  # a leftover of an interrupted export
        yield partial
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, path)
    except BaseException:
        try:
            os.remove(partial)
        except OSError:
            pass
        raise
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def open_reader(fmt: str, path: str, compression: str | None,
                ids: list | None = None) -> Any:
    """The reader of a file (format_*.py): ``.dim`` (None if unknown: an empty JSONL file),
    ``.total`` (items, None if unknown), ``.config`` (collection settings stored by an
    export, or None), ``.batches(batch_size, dim)``, ``.close()``; a context manager."""
    if fmt == "jsonl":
        from .format_jsonl import JsonlReader
        return JsonlReader(path, compression)
    if fmt == "parquet":
        from .format_parquet import ParquetReader
        return ParquetReader(path)
    from .format_npy import NpyReader
    return NpyReader(path, ids)


def open_writer(fmt: str, partial: str, compression: str | None, *, dim: int,
                count: int, id_kind: str | None, config: dict) -> Any:
    """The writer of an export into partial: ``.write(items)``, ``.close()`` (finish) and
    ``.abort()``. count is the exact number of items to come; id_kind "int", "str",
    "mixed" or None (no items); config the collection's settings (kept by Parquet)."""
    if fmt == "jsonl":
        from .format_jsonl import JsonlWriter
        return JsonlWriter(partial, compression)
    if fmt == "parquet":
        from .format_parquet import ParquetWriter
        return ParquetWriter(partial, dim, id_kind, config)
    from .format_npy import NpyWriter
    return NpyWriter(partial, dim, count)


def merge_fields(metadata: dict | None, extra: dict, where: str) -> dict | None:
    """metadata with the extra fields (top-level JSONL keys / Parquet columns besides id,
    vector, metadata, document) added; a field in both is an InvalidArgumentError."""
    if not extra:
        return metadata
    if metadata is None:
        return dict(extra)
    if not isinstance(metadata, dict):
        return metadata  # the collection's validation names the bad metadata
    both = sorted(set(metadata) & set(extra))
    if both:
        raise InvalidArgumentError(f"{where}: field {both[0]!r} is both a column / top-level "
                                   f"key and a key of metadata")
    return {**metadata, **extra}
