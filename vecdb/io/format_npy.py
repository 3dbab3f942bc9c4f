""".npy import and export: the vectors only, as one [n, dim] array (numpy's own format:
magic b"\\x93NUMPY", version, header; no checksum).

An export writes float32 [n, dim] in row order through ``np.lib.format.open_memmap``,
batch by batch, so memory stays constant; ids, metadata and documents are not kept (export
JSONL or Parquet to keep them). An import maps the file (``mmap_mode="r"``) and converts one
slice of batch_size rows at a time to float32; any real numeric dtype and C or Fortran
order are accepted. The ids are ``ids=`` (a sequence of n ids) or 0, 1, ..., n - 1.

Invariants:
 1. The writer is told the exact row count up front (the export's snapshot count) and
    refuses to close with fewer or more rows written.
 2. The reader never reads the array whole: rows [start, start + batch_size) at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CorruptionError, DimensionMismatchError, InvalidArgumentError
from .formats import Items

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self


class NpyReader:
    """Reads the vectors of a .npy file in batches (see the module docstring).

    >>> with NpyReader("vectors.npy", None) as reader:  # doctest: +SKIP
    ...     reader.dim, reader.total
    (384, 10000)
    """

    config: dict | None = None

    def __init__(self, path: str, ids: list | None) -> None:
        self.path = path
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise CorruptionError(f"path: {path!r} is not a readable .npy file: {e}") from None
        if not isinstance(array, np.ndarray):
            raise InvalidArgumentError(f"path: {path!r} is not a .npy file (an .npz archive?)")
        if array.ndim != 2 or array.shape[1] < 1:
            raise InvalidArgumentError(f"path: {path!r} holds an array of shape {array.shape}; "
                                       f"expected vectors [n, dim]")
        if not (np.issubdtype(array.dtype, np.floating) or
                np.issubdtype(array.dtype, np.integer)):
            raise InvalidArgumentError(f"path: {path!r} holds dtype {array.dtype}; expected "
                                       f"real numbers (float32 best)")
        if ids is not None and len(ids) != array.shape[0]:
            raise InvalidArgumentError(f"ids: got {len(ids)} ids for the {array.shape[0]} "
                                       f"vectors of {path!r}")
        self._array: Any = array
        self._ids = ids
        self.total: int | None = int(array.shape[0])
        self.dim: int | None = int(array.shape[1])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._array = None  # drops the map

    def batches(self, batch_size: int, dim: int) -> Iterator[Items]:
        """Items of at most batch_size rows (no metadata, no documents), in file order."""
        if self.dim != dim:
            raise DimensionMismatchError(f"path: {self.path!r} holds vectors of dimension "
                                         f"{self.dim}, expected {dim}")
        for start in range(0, self.total or 0, batch_size):
            stop = min(start + batch_size, self.total)
            with np.errstate(over="ignore"):  # beyond float32: inf, refused by add()
                vectors = np.ascontiguousarray(self._array[start:stop], dtype=np.float32)
            ids = list(range(start, stop)) if self._ids is None else self._ids[start:stop]
            n = stop - start
            yield Items(ids, vectors, [None] * n, [None] * n, first=start)


class NpyWriter:
    """Writes the vectors of an export into a .npy file of exactly count rows."""

    def __init__(self, partial: str, dim: int, count: int) -> None:
        if count == 0:  # older numpy cannot map an empty array
            with open(partial, "wb") as f:  # (a file: np.save would add ".npy" to a name)
                np.save(f, np.empty((0, dim), dtype=np.float32))
            self._array: Any = np.empty((0, dim), dtype=np.float32)
        else:
            self._array = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32,
                                                    shape=(count, dim))
        self._count = count
        self._done = 0

    def write(self, items: Items) -> None:
        n = len(items)
        if self._done + n > self._count:
            raise CorruptionError(f"export: more rows than the snapshot's {self._count}")
        self._array[self._done:self._done + n] = items.vectors
        self._done += n

    def close(self) -> None:
        if self._done != self._count:
            raise CorruptionError(f"export: wrote {self._done} rows, the snapshot holds "
                                  f"{self._count}")
        if isinstance(self._array, np.memmap):
            self._array.flush()
        self._array = None

    def abort(self) -> None:
        self._array = None
