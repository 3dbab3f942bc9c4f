"""The filter columns of one row generation, kept in step with LMDB and checkpointed.

The columns (storage/columns.py) are derived from the records in LMDB. They are loaded from
the checkpoint ``filters.cols`` (storage/colfile.py) on first use, then *caught up* before
every filter evaluation: rows past the store's watermark and edit-log entries past its edit
count are read from LMDB in one snapshot and applied. The writer, read-only handles and other
processes all take the same path, so columns are never ahead of or behind what LMDB says.

Invariants:
 1. ``run(fn)`` calls fn on a store equal to the records of rows [0, W) as of one LMDB
    snapshot of the collection's state (W, E), under the lock, so no catch-up runs while fn
    evaluates on it.
 2. A checkpoint that fails its checks (at load, or when a column is first used) is
    discarded with a RuntimeWarning and the columns rebuilt from LMDB; a missing one is
    rebuilt silently (a new collection, or one written
    before the columns existed). A writable handle writes the checkpoint on checkpoint()
    (close, flush) and after a catch-up longer than the checkpoint tail threshold.
 3. Row numbers belong to the generation: a snapshot whose generation differs from this
    store's raises GenerationMoved, and the caller starts over with the new RowSet.
 4. Results of evaluations may be cached under (node, W, E): the store changes only by
    catch-up, which moves W or E.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from ..errors import CorruptionError, VecDBError
from ..storage import colfile, keys, records
from ..storage.columns import ColumnStore
from .hnsw import CHECKPOINT_MIN_TAIL, CHECKPOINT_TAIL_SHARE

APPLY_BATCH = 8192   # rows decoded and applied at a time during a catch-up
CACHE_ENTRIES = 16   # evaluated filters kept per generation
T = TypeVar("T")


class GenerationMoved(Exception):
    """The collection's row generation changed under the caller (invariant 3)."""


class FilterColumns:
    """The filter columns of one generation (see the module docstring)."""

    def __init__(self, directory: str, gen: int, writable: bool, fsync: bool, label: str) -> None:
        self.directory = directory
        self.gen = gen
        self.writable = writable
        self.fsync = fsync
        self.label = label
        self._lock = threading.Lock()
        self._store: Optional[ColumnStore] = None
        self._saved: Tuple[int, int] = (-1, -1)   # (W, E) of the checkpoint on disk
        self._loaded_from_file = False
        self._discarded = False                   # the checkpoint failed its checks
        self.cache: "OrderedDict[Any, Any]" = OrderedDict()
        self.rebuilds = 0
        self.replayed = 0   # rows and edits applied from LMDB since the load

    def run(self, env: Any, prefix: bytes, fn: Callable[[ColumnStore], T],
            known: Optional[Tuple[int, int]] = None) -> T:
        """fn(store) on the store caught up with LMDB, under the lock (invariant 1).

        known = (W, E) the caller has already read from LMDB (its RowSet's): a store that far
        along needs no LMDB read (the common case: nothing was written since). Without it
        the store is always caught up with LMDB.

        A checkpoint whose columns fail their checks when first used (they are checked
        lazily) is dropped with a RuntimeWarning, and fn runs again on columns rebuilt from
        LMDB (invariant 2)."""
        with self._lock:
            for attempt in range(2):
                from_file = self._store is None or self._loaded_from_file
                try:
                    store = self._store
                    if store is None or known is None or store.watermark < known[0] or \
                            store.edit_seq < known[1]:
                        store = self._catch_up(env, prefix)
                    return fn(store)
                except VecDBError as e:
                    self._store = None
                    self.cache.clear()
                    if attempt or not from_file or not isinstance(e, CorruptionError):
                        raise
                    self._discard(e)
                except BaseException:
                    self._store = None  # reloaded from the checkpoint next time
                    self.cache.clear()
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def remember(self, key: Any, value: Any) -> None:
        """Caches an evaluation result (call from within run())."""
        self.cache[key] = value
        self.cache.move_to_end(key)
        while len(self.cache) > CACHE_ENTRIES:
            self.cache.popitem(last=False)

    def recall(self, key: Any) -> Any:
        value = self.cache.get(key)
        if value is not None:
            self.cache.move_to_end(key)
        return value

    # -- loading and catching up -------------------------------------------------------------

    def _load(self) -> ColumnStore:
        if self._discarded:
            store = ColumnStore()
        else:
            try:
                store = colfile.load(self.directory)
            except VecDBError as e:  # CorruptionError, FormatVersionError
                self._discard(e)
                store = ColumnStore()
        self._loaded_from_file = store.watermark > 0
        self._saved = (store.watermark, store.edit_seq) if not self._discarded else (-1, -1)
        return store

    def _discard(self, error: Exception) -> None:
        """Stops using the checkpoint: the next load rebuilds from LMDB (then saves)."""
        warnings.warn(f"vecdb: the filter columns of {self.label} cannot be used ({error}); "
                      f"rebuilding them from the stored records", RuntimeWarning, stacklevel=7)
        self.rebuilds += 1
        self._discarded = True

    def _catch_up(self, env: Any, prefix: bytes) -> ColumnStore:
        store = self._store
        if store is None:
            store = self._store = self._load()
        dbs = env.dbs
        with env.read() as txn:
            raw = txn.get(prefix, db=dbs["state"])
            if raw is None:
                raise GenerationMoved()
            watermark, _, gen, edit_seq = keys.unpack_state(raw)
            if gen != self.gen or store.watermark > watermark:
                raise GenerationMoved()
            if store.watermark == watermark and store.edit_seq >= edit_seq:
                return store
            start = store.watermark
            tail = watermark - start + edit_seq - store.edit_seq
            self._apply_rows(txn, dbs["rows"], prefix, store, start, watermark)
            if edit_seq > store.edit_seq:
                edited = self._edited_rows(txn, dbs["edits"], prefix, store.edit_seq, edit_seq)
                self._apply_edits(txn, dbs["rows"], prefix, store,
                                  [r for r in edited if r < start], watermark)
            store.advance(watermark, edit_seq)
        self.replayed += tail
        self.cache.clear()
        if self.writable and tail >= max(CHECKPOINT_MIN_TAIL, CHECKPOINT_TAIL_SHARE * watermark):
            self._save(store)
        return store

    @staticmethod
    def _apply_rows(txn: Any, rows_db: Any, prefix: bytes, store: ColumnStore, start: int,
                    end: int) -> None:
        """Applies the records of rows [start, end) (tombstoned rows have none: left empty)."""
        if start >= end:
            return
        batch: Tuple[List[int], List[Any], List[Any]] = ([], [], [])
        with txn.cursor(db=rows_db) as cur:
            if cur.set_range(keys.row_key(prefix, start)):
                for key, value in cur:
                    if not key.startswith(prefix):
                        break
                    row = keys.key_row(key)
                    if row >= end:
                        break
                    _, meta, doc = records.decode(value)
                    batch[0].append(row)
                    batch[1].append(meta)
                    batch[2].append(doc)
                    if len(batch[0]) >= APPLY_BATCH:
                        store.set_rows(*batch, end)
                        batch = ([], [], [])
        store.set_rows(*batch, end)

    @staticmethod
    def _edited_rows(txn: Any, edits_db: Any, prefix: bytes, start: int, end: int) -> List[int]:
        """The distinct rows of edit-log entries [start, end), ascending."""
        rows = set()
        if edits_db is None:  # the table predates this database's last writer: no edits
            return []
        with txn.cursor(db=edits_db) as cur:
            if cur.set_range(keys.row_key(prefix, start)):
                for key, value in cur:
                    if not key.startswith(prefix) or keys.key_row(key) >= end:
                        break
                    rows.add(keys.unpack_u64(value))
        return sorted(rows)

    @staticmethod
    def _apply_edits(txn: Any, rows_db: Any, prefix: bytes, store: ColumnStore,
                     rows: List[int], n_rows: int) -> None:
        """Re-applies the current records of edited rows (deleted since: emptied)."""
        for i in range(0, len(rows), APPLY_BATCH):
            chunk = rows[i:i + APPLY_BATCH]
            metas, docs = [], []
            for row in chunk:
                value = txn.get(keys.row_key(prefix, row), db=rows_db)
                _, meta, doc = records.decode(value) if value is not None else (None, None, None)
                metas.append(meta)
                docs.append(doc)
            store.set_rows(chunk, metas, docs, n_rows)

    def carry_over(self, env: Any, prefix: bytes, live: Any, new: "FilterColumns") -> None:
        """Gives new (the next generation, rows = live renumbered) these columns, caught up
        and checkpointed, when they are loaded: vacuum then needs no rebuild from LMDB.
        Call under the write lock, before the vacuum commits."""
        with self._lock:
            if self._store is None:
                return
        renumbered = self.run(env, prefix, lambda store: store.renumbered(live))
        with new._lock:
            new._store, new._loaded_from_file = renumbered, False
            if new.writable:
                new._save(renumbered)

    # -- checkpoints -------------------------------------------------------------------------

    def _save(self, store: ColumnStore) -> None:
        colfile.save(store, self.directory, fsync=self.fsync)
        self._saved = (store.watermark, store.edit_seq)
        self._discarded = False

    def checkpoint(self) -> bool:
        """Writes the checkpoint if the loaded columns moved past it; True if written."""
        with self._lock:
            store = self._store
            if not self.writable or store is None or \
                    (store.watermark, store.edit_seq) == self._saved:
                return False
            self._save(store)
            return True

    def stats(self) -> dict:
        store = self._store
        return {"loaded": store is not None,
                "fields": len(store.field_names()) if store is not None else None,
                "watermark": store.watermark if store is not None else None,
                "checkpoint_rows": max(self._saved[0], 0), "replayed": self.replayed,
                "rebuilds": self.rebuilds}
