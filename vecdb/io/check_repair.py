"""Repair of what the integrity check found, from the sources of truth (check_lmdb.py says
which they are). Runs under the database write lock (check.py takes it).

Per collection:
  1. one LMDB write transaction rebuilds the derived tables: the ids table from the row
     records and the tombstone log (when two live rows hold one id, the later row keeps it
     and the earlier is tombstoned, as an upsert would have done), the tombstone log
     renumbered without duplicates or rows past W (and T set to its length), the edit log
     likewise (E), the postings and text statistics from the live documents;
  2. the id column is rewritten from the records;
  3. damaged checkpoints (graph, codes, IVF-PQ lists, filter columns) are deleted;
  4. the collection's handle gets a fresh RowSet (as vacuum swaps one in: queries running
     on the old one finish on it), which rebuilds, retrains and checkpoints what was
     deleted; filter columns that existed are rebuilt from LMDB and checkpointed.
Database-wide: keys of collections that no longer exist are deleted, next_cid is moved past
every collection number, stray folders and stale temp files are removed.

Invariants:
 1. Nothing a source of truth holds is dropped: rows whose record is lost, unreadable or
    tombstoned-yet-present are left as they are, and so are the ids entries pointing at them.
 2. Each collection's LMDB repair commits whole or not at all (one transaction).

    >>> db._env.write(lambda txn: rebuild_lmdb(txn, db._env.dbs, info, {"ids"}),
    ...               sync=True)  # doctest: +SKIP
    {'ids': 1}
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import text_index_from_dict
from ..errors import VecDBError
from ..rowset import CHECKPOINT_FILES, RowSet
from ..storage import keys, postings
from ..storage.catalog import CollectionInfo
from ..storage.segments import HEADER_BYTES, ID_NOT_INT, IDS
from .check_files import open_segment, segment_store
from .check_lmdb import DECODE_ERRORS, CatalogView, CollectionScanner, decode_record
from .check_report import Findings
from .check_text import recompute_postings

if TYPE_CHECKING:  # pragma: no cover
    from ..database import Database

PUT_BATCH = 1 << 16
LMDB_COMPONENTS = {"ids", "tombstones", "edits", "postings"}


# -- LMDB -----------------------------------------------------------------------------------

def _prefixed(txn: Any, db: Any, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) under prefix, streamed (do not change db while iterating)."""
    if db is None:
        return
    with txn.cursor(db=db) as cur:
        if not cur.set_range(prefix):
            return
        for key, value in cur.iternext():
            if not key.startswith(prefix):
                return
            yield key, value


def _delete_prefix(txn: Any, db: Any, prefix: bytes) -> None:
    with txn.cursor(db=db) as cur:
        if cur.set_range(prefix):
            while cur.key().startswith(prefix) and cur.delete(dupdata=True):
                pass


def _rewrite_log(txn: Any, db: Any, prefix: bytes, rows: list[int]) -> None:
    _delete_prefix(txn, db, prefix)
    with txn.cursor(db=db) as cur:
        cur.putmulti([(keys.row_key(prefix, i), keys.pack_u64(r)) for i, r in enumerate(rows)])


def rebuild_lmdb(txn: Any, dbs: dict[str, Any], info: CollectionInfo,
                 components: set[str]) -> dict[str, Any]:
    """Step 1 of the module docstring, inside txn; returns what changed."""
    prefix = info.prefix
    w, t, gen, e = keys.unpack_state(txn.get(prefix, db=dbs["state"]))
    done: dict[str, Any] = {}
    log = list(_prefixed(txn, dbs["tombs"], prefix))
    tombs_ok = all(len(k) == 12 and len(v) == 8 for k, v in log)
    tomb_rows: list[int] = []
    if tombs_ok:
        seen: set[int] = set()
        for row in (keys.unpack_u64(v) for _, v in log):
            if row < w and row not in seen:
                seen.add(row)
                tomb_rows.append(row)
    else:
        tomb_rows = [keys.unpack_u64(v) for _, v in log if len(v) == 8]
    tombstoned = np.zeros(w, dtype=bool)
    tombstoned[[r for r in tomb_rows if r < w]] = True
    has_record = np.zeros(w, dtype=bool)
    keep_links: dict[int, bytes | None] = {}  # row -> its id key (None: unknown)
    holder: dict[bytes, int] = {}
    losers: list[int] = []
    for key, value in _prefixed(txn, dbs["rows"], prefix):
        row = keys.key_row(key) if len(key) == 12 else None
        if row is None:
            continue
        try:
            ext_id = decode_record(value)[0]
            id_key: bytes | None = keys.id_key(prefix, ext_id)
        except DECODE_ERRORS:  # unreadable: left as it is (invariant 1)
            id_key = None
        if row >= w or id_key is None or tombstoned[row]:
            keep_links[row] = id_key
            if row < w:
                has_record[row] = True
            continue
        has_record[row] = True
        if id_key in holder:
            losers.append(holder[id_key])
        holder[id_key] = row
    for row in np.flatnonzero(~has_record & ~tombstoned).tolist():
        keep_links[row] = None  # a lost record
    if losers and tombs_ok:
        for row in losers:
            txn.delete(keys.row_key(prefix, row), db=dbs["rows"])
            tomb_rows.append(row)
        done["tombstoned"] = sorted(losers)
    if tombs_ok and [(keys.key_row(k), keys.unpack_u64(v)) for k, v in log] != \
            list(enumerate(tomb_rows)):
        _rewrite_log(txn, dbs["tombs"], prefix, tomb_rows)
        done["tombstone_log"] = len(tomb_rows)
    done["ids"] = _rebuild_ids(txn, dbs["ids"], prefix, holder, keep_links)
    edits = dbs.get("edits")
    if "edits" in components and edits is not None:
        entries = [keys.unpack_u64(v) for k, v in list(_prefixed(txn, edits, prefix))
                   if len(k) == 12 and len(v) == 8]
        entries = [r for r in entries if r < w]
        _rewrite_log(txn, edits, prefix, entries)
        e = len(entries)
        done["edit_log"] = e
    if dbs.get("postings") is not None and ("postings" in components or done.get("tombstoned")):
        live = set(holder.values()) - set(done.get("tombstoned", ()))
        done["postings"] = _rebuild_postings(txn, dbs, info, live)
    txn.put(prefix, keys.pack_state(w, len(tomb_rows) if tombs_ok else t, gen, e),
            db=dbs["state"])
    return done


def _rebuild_ids(txn: Any, ids_db: Any, prefix: bytes, holder: dict[bytes, int],
                 keep_links: dict[int, bytes | None]) -> int:
    """Makes the ids table equal holder, keeping entries that point at rows left as they
    are (invariant 1) unless a live row holds their id. Returns the entries changed."""
    wanted = dict(holder)
    changed = 0
    for key, value in list(_prefixed(txn, ids_db, prefix)):
        row = keys.unpack_u64(value) if len(value) == 8 else None
        if row is not None and wanted.get(key) == row:
            del wanted[key]
            continue
        if row is not None and key not in wanted and row in keep_links and \
                keep_links[row] in (None, key):
            continue
        txn.delete(key, db=ids_db)
        changed += 1
    for key, row in wanted.items():
        txn.put(key, keys.pack_u64(row), db=ids_db)
        changed += 1
    return changed


def _rebuild_postings(txn: Any, dbs: dict[str, Any], info: CollectionInfo,
                      live: set[int]) -> int:
    """Drops and rewrites the collection's postings and text statistics from the documents
    of the live rows; returns the postings written."""
    prefix = info.prefix
    postings.drop(txn, dbs["postings"], dbs["meta"], prefix)
    config = text_index_from_dict(info.index)
    if config is None:
        return 0
    stats = postings.TextStats()
    pending: list[tuple] = []
    written = 0
    for key, value in _prefixed(txn, dbs["rows"], prefix):
        row = keys.key_row(key) if len(key) == 12 else -1
        if row not in live:
            continue
        pending += recompute_postings(prefix, row, decode_record(value)[2], config, stats)
        if len(pending) >= PUT_BATCH:
            written += len(pending)
            postings.put(txn, dbs["postings"], pending)
            pending = []
    written += len(pending)
    postings.put(txn, dbs["postings"], pending)
    stats.save(txn, dbs["meta"], prefix)
    return written


def repair_catalog(db: Database, view: CatalogView) -> None:
    """Deletes the keys of collections that do not exist; moves next_cid past every cid."""
    env = db._env
    if not view.orphans and view.next_cid is None:
        return

    def transaction(txn: Any) -> None:
        for table, prefixes in view.orphans.items():
            for prefix in prefixes:
                if table == "meta":
                    txn.delete(b"text" + prefix, db=env.dbs["meta"])
                else:
                    _delete_prefix(txn, env.dbs[table], prefix)
        if view.next_cid is not None:
            txn.put(b"next_cid", keys.pack_u64(view.next_cid), db=env.dbs["meta"])

    env.write(transaction, sync=True)


# -- files ----------------------------------------------------------------------------------

def rewrite_id_column(db: Database, info: CollectionInfo, state: tuple,
                      gen_dir: str) -> int:
    """Step 2: every segment of the id column that is damaged or disagrees with the records
    is rewritten (tombstoned rows keep what they held, or get ID_NOT_INT). Returns the
    segments rewritten."""
    with db._env.read() as txn:
        scanner = CollectionScanner(txn, db._env.dbs, info, state, Findings())
        scanner.read_logs()
        scanner.read_rows((), _Silent())
    scan = scanner.scan
    reader = segment_store(scan, gen_dir, IDS)
    cap, w = 1 << reader.shift, scan.watermark
    rewrite = []
    for number in range((w + cap - 1) >> reader.shift):
        start, stop = number * cap, min(w, (number + 1) * cap)
        column = np.full(stop - start, ID_NOT_INT, dtype=np.int64)
        fd, _ = open_segment(reader, number)
        held = 0
        if fd is None:  # damaged or missing: written anew
            if os.path.exists(reader._path(number)):
                os.remove(reader._path(number))
        else:
            try:
                held = max(0, os.fstat(fd).st_size - HEADER_BYTES) // 8
                old = np.frombuffer(os.pread(fd, 8 * min(held, len(column)), HEADER_BYTES),
                                    dtype=np.int64)
            finally:
                os.close(fd)
            column[:len(old)] = old
        fixed = np.where(scan.live[start:stop], scan.int_ids[start:stop], column)
        if held < len(column) or (fixed != column).any():
            rewrite.append((start, fixed))
    if rewrite:
        store = segment_store(scan, gen_dir, IDS, writable=True)
        try:
            for start, column in rewrite:
                store.append(start, column.reshape(-1, 1))
            store.sync()
        finally:
            store.close()
    return len(rewrite)


class _Silent:
    def update(self, n: int) -> None:
        pass


def delete_checkpoints(gen_dir: str, components: set[str]) -> list[str]:
    """Step 3: deletes the checkpoints of the given components; returns those deleted."""
    deleted = []
    for component, name in CHECKPOINT_FILES.items():
        path = os.path.join(gen_dir, name)
        if component in components and os.path.exists(path):
            os.remove(path)
            deleted.append(component)
    return deleted


def remove_paths(paths: list[str]) -> None:
    """Removes stray folders (whole) and files."""
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)


# -- handles --------------------------------------------------------------------------------

def reopen(db: Database, info: CollectionInfo, rebuild_filters: bool) -> str | None:
    """Step 4: a fresh RowSet for the collection's handle (a new handle when none is open),
    which rebuilds what was deleted; None, or why it could not be opened."""
    env = db._env
    try:
        with warnings.catch_warnings():  # "rebuilding ...": the report says so already
            warnings.simplefilter("ignore", RuntimeWarning)
            with db._handles_lock:
                col = db._collections.get(info.name)
                opened = col is None or col._info.cid != info.cid
                if opened:
                    col = db._handle(info)  # opening builds what is missing
            if not opened:  # the old RowSet is dropped, not closed: queries running on it
                col._rows = _fresh_rowset(db, col)  # finish there (as in vacuum.py)
            rows = col._rows
            if rebuild_filters:
                rows.filters.run(env, info.prefix, lambda store: None)
                rows.filters.checkpoint()
            if rows.index is not None:
                rows.index.checkpoint()
    except VecDBError as e:
        return f"{type(e).__name__}: {e}"
    return None


def _fresh_rowset(db: Database, col: Any) -> RowSet:
    env = db._env
    with env.read() as txn:
        w, t, gen, e = keys.unpack_state(txn.get(col._prefix, db=env.dbs["state"]))
        tombs = [keys.unpack_u64(v) for _, v in _prefixed(txn, env.dbs["tombs"], col._prefix)
                 if len(v) == 8]
    rows = RowSet(col._base_dir, col._info, col._config, gen, writable=True,
                  fsync=db.durability != "off", quantization=col._quantization)
    rows.apply(w, t, [r for r in tombs if r < w], e)
    rows.open_index()
    return rows
