"""The segment-file part of the integrity check: the vector segments and the id column of a
generation (storage/segments.py) hold valid headers and the rows [0, W), the vectors are
finite, the id column equals the ids of the row records; and the ``collections`` folder
holds nothing but the current generation folder of each collection.

The vector segments are a source of truth: damage there is reported, never repaired. The id
column and the folders of dropped collections or old generations are derived or garbage:
repair rewrites / removes them.

Invariants:
 1. Files are opened read-only and mapped read-only, and only the rows a file holds are
    mapped: a truncated file is reported, never read past its end.
 2. Headers are judged by the segment store's own checks (``SegmentStore._check_header``).

    >>> views = check_segments(findings, scan, gen_dir, rel_dir, VECTORS, files)  # doctest: +SKIP
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Sequence

import numpy as np

from ..errors import VecDBError
from ..rowset import generation_dir
from ..storage.segments import HEADER_BYTES, IDS, VECTORS, SegmentStore
from .check_lmdb import CatalogView, CollectionScan
from .check_report import Findings

FINITE_CHUNK_ROWS = 1 << 16
TMP_MIN_AGE = 60.0  # seconds: a younger temp file may be a checkpoint being written


def segment_store(scan: CollectionScan, gen_dir: str, kind: tuple,
                  writable: bool = False) -> SegmentStore:
    """A (not yet opened) store of the generation's vectors or id column."""
    dim = scan.info.dim if kind is VECTORS else 1
    return SegmentStore(gen_dir, dim, bytes.fromhex(scan.info.uuid), writable, kind)


def open_segment(store: SegmentStore, number: int) -> tuple[int | None, str]:
    """(read-only fd, '') of a segment whose header passes, or (None, why it does not)."""
    path = store._path(number)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, "is missing"
    try:
        store._check_header(fd, path, number)
    except VecDBError as e:
        os.close(fd)
        return None, f"fails its header checks ({e})"
    return fd, ""


def check_segments(findings: Findings, scan: CollectionScan, gen_dir: str, rel_dir: str,
                   kind: tuple, files: list[str]) -> list[np.ndarray | None]:
    """Per segment of rows [0, W): a read-only [rows, dim] view of the rows its file holds
    (None when its header fails). Vector damage is not repairable; id-column damage is."""
    store = segment_store(scan, gen_dir, kind)
    component = "segments" if kind is VECTORS else "id_column"
    repairable = kind is IDS
    cap = 1 << store.shift
    w = scan.watermark
    views: list[np.ndarray | None] = []
    for number in range((w + cap - 1) >> store.shift):
        rel = f"{rel_dir}/{os.path.basename(store._path(number))}"
        files.append(rel)
        fd, why = open_segment(store, number)
        if fd is None:
            findings.add(scan.name, component, f"{rel} {why}; it should hold rows "
                         f"{number * cap}..{min(w, (number + 1) * cap) - 1}", repairable)
            views.append(None)
            continue
        try:
            size = os.fstat(fd).st_size
            held = max(0, size - HEADER_BYTES) // store.row_bytes
            need = min(cap, w - number * cap)
            if held < need:
                first = number * cap + held
                findings.add(scan.name, component, f"{rel} holds {held} rows; the watermark "
                             f"W = {w} needs {need} (rows {first}..{number * cap + need - 1} "
                             f"are missing)", repairable)
            rows = min(held, need)
            if rows:
                mm = mmap.mmap(fd, HEADER_BYTES + rows * store.row_bytes, access=mmap.ACCESS_READ)
                views.append(np.frombuffer(mm, dtype=store.dtype, count=rows * store.dim,
                                           offset=HEADER_BYTES).reshape(rows, store.dim))
            else:
                views.append(np.zeros((0, store.dim), dtype=store.dtype))
        finally:
            os.close(fd)
    return views


def check_finite(findings: Findings, scan: CollectionScan, views: Sequence[np.ndarray | None],
                 rel_dir: str, shift: int) -> None:
    """Every stored vector is finite (NaN / infinity there means the file was damaged)."""
    for number, view in enumerate(views):
        if view is None:
            continue
        for lo in range(0, len(view), FINITE_CHUNK_ROWS):
            chunk = view[lo:lo + FINITE_CHUNK_ROWS]
            for local in np.flatnonzero(~np.isfinite(chunk).all(axis=1)).tolist():
                row = (number << shift) + lo + local
                offset = HEADER_BYTES + (lo + local) * chunk.shape[1] * 4
                findings.add(scan.name, "segments", f"row {row}{scan.id_of(row)} of "
                             f"{rel_dir}/vectors.{number}.f32 (offset {offset}) holds a "
                             f"non-finite value", False, kind="nonfinite")


def check_id_column(findings: Findings, scan: CollectionScan,
                    views: Sequence[np.ndarray | None], rel_dir: str, shift: int) -> None:
    """The id column holds the id of every live row (ID_NOT_INT for str ids)."""
    for number, view in enumerate(views):
        if view is None:
            continue
        start = number << shift
        column = view[:, 0]
        stop = start + len(column)
        bad = scan.live[start:stop] & (column != scan.int_ids[start:stop])
        for local in np.flatnonzero(bad).tolist():
            row = start + local
            findings.add(scan.name, "id_column", f"row {row}{scan.id_of(row)}: "
                         f"{rel_dir}/ids.{number}.i64 holds {int(column[local])} (offset "
                         f"{HEADER_BYTES + 8 * local})", True, kind="idcol_value")


def check_folders(findings: Findings, db_path: str, collections_dir: str, view: CatalogView,
                  generations: dict[str, int]) -> tuple[list[str], list[str]]:
    """(stray entries of the collections folder, stale temp files of generation folders):
    folders of dropped collections and old generations, and checkpoint temp files a crash
    left (older than TMP_MIN_AGE). generations: uuid -> current generation."""
    strays: list[str] = []
    temps: list[str] = []
    if not os.path.isdir(collections_dir):
        return strays, temps
    keep = {os.path.basename(generation_dir(u, g)) for u, g in generations.items()}
    unknown = view.uuids - set(generations)  # in the catalog, but its state is unreadable
    for entry in sorted(os.listdir(collections_dir)):
        path = os.path.join(collections_dir, entry)
        rel = os.path.relpath(path, db_path)
        if entry in keep:
            if os.path.isdir(path):
                temps += _old_temps(path)
            continue
        if any(entry == u or entry.startswith(u + ".") for u in unknown):
            continue
        strays.append(path)
        what = "generation" if entry.split(".v")[0] in generations else "collection"
        reason = f"an old {what} folder" if what == "generation" else \
            "the folder of no collection (a dropped one)"
        findings.add(None, "files", f"{rel} is {reason}", view.intact, kind="stray")
    for path in temps:
        findings.add(None, "files", f"{os.path.relpath(path, db_path)} is a temp file a "
                     f"crashed checkpoint write left", True, kind="temp")
    return strays, temps


def _old_temps(folder: str) -> list[str]:
    now = time.time()
    out = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".tmp") and os.path.isfile(path) and \
                now - os.path.getmtime(path) > TMP_MIN_AGE:
            out.append(path)
    return out
