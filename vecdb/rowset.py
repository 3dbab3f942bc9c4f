"""RowSet: the rows of one generation of a collection, in memory and in its folder.

A collection's rows are numbered 0, 1, 2, ... in insertion order; ``vacuum()`` renumbers the
live ones into a new *generation* with its own folder (``collections/<uuid>`` for generation
0, ``collections/<uuid>.v<g>`` after). A RowSet holds, for one generation:
  - the vector segments and the int-id column (storage/segments.py) of its folder: a query
    that returns only ids reads them from the column, without LMDB;
  - the committed watermark W and tombstone count T it has taken in, and the tombstone
    bitset (bit r set: row r is deleted or replaced);
  - its index: the graph (index/hnsw.py, with its quantized codes, index/codes.py) or the
    IVF-PQ lists (index/ivfpq.py), or none for Flat; and the flat index (exact scans);
  - the filter columns (index/filter_columns.py), which catch up with LMDB by themselves.

Invariants:
 1. W and the bitset only grow within a generation; ``snapshot()`` returns a consistent pair
    (the bitset array is replaced, never shrunk, when it grows).
 2. The index covers a prefix of [0, W); a search extends it first when it lags (read-only
    handles that took in rows written by another process).
 3. A RowSet is immutable in its generation number: a new generation is a new RowSet,
    swapped in whole by the collection, so a query holding the old one stays consistent.
"""

from __future__ import annotations

import glob
import os
import shutil
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .config import HNSW, IVFPQ, IndexConfig, QuantConfig
from .index.flat import FlatIndex
from .index.filter_columns import FilterColumns
from .index.codes import CODES_FILE
from .index.hnsw import GRAPH_FILE, HnswIndex
from .index.ivfpq import IVF_FILE, IvfPqIndex
from .storage import colfile
from .storage.catalog import CollectionInfo
from .storage.segments import ID_NOT_INT, IDS, SegmentStore


# The derived checkpoint files a generation folder may hold, by the component they save.
CHECKPOINT_FILES = {"graph": GRAPH_FILE, "codes": CODES_FILE, "ivfpq": IVF_FILE,
                    "filters": colfile.FILE_NAME}


def generation_dir(base: str, gen: int) -> str:
    """The folder of generation gen of the collection whose generation-0 folder is base."""
    return base if gen == 0 else f"{base}.v{gen}"


def remove_generation_dirs(base: str, keep: Optional[int] = None) -> None:
    """Deletes the folders of every generation of a collection but keep (None: all)."""
    for path in [base] + glob.glob(glob.escape(base) + ".v*"):
        suffix = path[len(base):]
        gen = 0 if not suffix else int(suffix[2:]) if suffix[2:].isdigit() else None
        if gen is not None and gen != keep and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)


class RowSet:
    """Segments, tombstones and indexes of one collection generation (see module docstring)."""

    def __init__(self, base_dir: str, info: CollectionInfo, config: IndexConfig, gen: int,
                 writable: bool, fsync: bool = True,
                 quantization: Optional[QuantConfig] = None) -> None:
        self.gen = gen
        self.directory = generation_dir(base_dir, gen)
        self.dim = info.dim
        self.store = SegmentStore(self.directory, info.dim, bytes.fromhex(info.uuid), writable)
        self.idcol = SegmentStore(self.directory, 1, bytes.fromhex(info.uuid), writable, IDS)
        kernel_metric = "l2" if info.metric == "l2" else "ip"
        self.flat = FlatIndex(kernel_metric)
        label = f"collection {info.name!r}"
        unit_rows = info.metric == "cosine"  # stored normalized
        self.index: Optional[Union[HnswIndex, IvfPqIndex]] = None
        if isinstance(config, HNSW):
            self.index = HnswIndex(self.directory, info.dim, kernel_metric, config,
                                   self.store.shift, writable, label=label, fsync=fsync,
                                   quantization=quantization, unit_rows=unit_rows)
        elif isinstance(config, IVFPQ):
            self.index = IvfPqIndex(self.directory, info.dim, kernel_metric, config,
                                    self.store.shift, writable, label=label, fsync=fsync,
                                    unit_rows=unit_rows)
        self.filters = FilterColumns(self.directory, gen, writable, fsync, label=label)
        self._lock = threading.Lock()
        self.watermark = 0
        self.tomb_seq = 0
        self.edit_seq = 0
        self._deny = np.zeros(1, dtype=np.uint64)

    def apply(self, watermark: int, tomb_seq: int, tomb_rows: Sequence[int],
              edit_seq: int) -> None:
        """Takes in committed rows up to watermark, the given new tombstones, and the edit
        count (the filter columns read the edits themselves)."""
        self.store.views(watermark)  # maps the new rows (and checks the files hold them)
        self.idcol.views(watermark)
        with self._lock:
            words = (watermark + 63) // 64
            if words > len(self._deny):
                grown = np.zeros(max(words, 2 * len(self._deny)), dtype=np.uint64)
                grown[: len(self._deny)] = self._deny
                self._deny = grown
            if len(tomb_rows):
                rows = np.asarray(tomb_rows, dtype=np.uint64)
                np.bitwise_or.at(self._deny, (rows >> np.uint64(6)).astype(np.intp),
                                 np.left_shift(np.uint64(1), rows & np.uint64(63)))
            self.watermark = watermark
            self.tomb_seq = tomb_seq
            self.edit_seq = edit_seq

    def append(self, start: int, vectors: np.ndarray, ids: Sequence[Any], sync: bool) -> None:
        """Writes rows [start, start + n) past the watermark: vectors and the id column."""
        self.store.append(start, vectors)
        column = np.fromiter((i if type(i) is int and i != ID_NOT_INT else ID_NOT_INT
                              for i in ids), dtype=np.int64, count=len(ids))
        self.idcol.append(start, column.reshape(-1, 1))
        if sync:
            self.sync()

    def sync(self) -> None:
        """Makes every appended row durable (vectors and id column)."""
        self.store.sync()
        self.idcol.sync()

    def int_ids(self, rows: List[int]) -> Optional[List[int]]:
        """The ids of the given rows (all in [0, W)) from the id column, or None if one of
        them is not an int (the caller then reads the records)."""
        column = self.idcol.scalars(self.watermark)
        shift = self.idcol.shift
        if len(column) == 1:
            first = column[0]
            ids = [first[r] for r in rows]
        else:
            mask = (1 << shift) - 1
            ids = [column[r >> shift][r & mask] for r in rows]
        return None if ID_NOT_INT in ids else ids

    def open_index(self) -> None:
        if self.index is not None:
            self.index.open(self.store.views, self.watermark)

    def extend_index(self) -> None:
        if self.index is not None:
            self.index.extend(self.store.views, self.watermark)

    def build_index(self, previous: Optional["RowSet"] = None,
                    on_rows: Optional[Callable[[int], Any]] = None) -> None:
        """A fresh index over rows [0, W) (vacuum's new generation), reusing the trained
        quantizer or IVF-PQ centroids of previous's index when it has them; on_rows(n) is
        told of the rows indexed as the build advances (a progress bar)."""
        old = previous.index if previous is not None else None
        if isinstance(self.index, HnswIndex):
            self.index.build(self.store.views, self.watermark, previous=old, on_rows=on_rows)
            return
        if self.index is not None:
            self.index.build(self.store.views, self.watermark, previous=old)
        if on_rows is not None:
            on_rows(self.watermark)

    @property
    def live(self) -> int:
        return self.watermark - self.tomb_seq

    def snapshot(self) -> Tuple[int, int, Optional[np.ndarray]]:
        """(W, live rows, tombstone bitset or None when nothing is deleted) as of now."""
        with self._lock:
            return self.watermark, self.watermark - self.tomb_seq, (
                self._deny if self.tomb_seq else None)

    def live_rows(self) -> np.ndarray:
        """The rows of [0, W) that are not tombstoned, ascending (int64)."""
        watermark, _, deny = self.snapshot()
        rows = np.arange(watermark, dtype=np.int64)
        if deny is None:
            return rows
        bits = np.unpackbits(deny.view(np.uint8), bitorder="little")[:watermark].astype(bool)
        return rows[~bits]

    def stats(self) -> Dict[str, Any]:
        watermark, live, _ = self.snapshot()
        if self.index is not None:
            index = self.index.stats()
        else:
            index = {"type": "flat", "code_bytes_per_vector": 4 * self.dim,
                     "graph_bytes_per_vector": 0}
        return {"rows": watermark, "live": live, "tombstones": watermark - live,
                "code_bytes_per_vector": index["code_bytes_per_vector"],
                "graph_bytes_per_vector": index["graph_bytes_per_vector"],
                "generation": self.gen, "vector_bytes": watermark * self.dim * 4,
                "segments": len(self.store.views(watermark)) if watermark else 0,
                "index": index, "filter_columns": self.filters.stats()}

    def close(self, checkpoint: bool, sync: bool = False) -> None:
        """Closes the files; sync first makes the appended rows durable, checkpoint writes the
        index if it changed."""
        if sync:
            self.sync()
        if checkpoint:
            self.filters.checkpoint()
        if self.index is not None:
            if checkpoint:
                self.index.checkpoint()
            self.index.close()
        self.store.close()
        self.idcol.close()
