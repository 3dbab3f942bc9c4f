"""Online backup of a whole database, and verified restore (``db.backup``, ``vecdb.restore``).

backup(db, dest) while the database stays open and writable:
  1. A writable Database first writes the checkpoints of the indexes and filter columns of
     the collections it has loaded, under its write lock (like ``Collection.flush()``), so a
     quiescent backup carries no tail to replay and restores bit-identical checkpoints.
  2. Snapshot (``take_snapshot``), tried again when a vacuum switches a generation meanwhile:
     a. read every collection's (cid, generation G) in a short read transaction;
     b. open the checkpoint files of each generation folder read in (a);
     c. copy the LMDB environment with LMDB's own copy (``_copy_lmdb``: one read
        transaction of its own, into an unlinked temp file): THE snapshot; read every
        collection's (W, G) back from the copy and check every (cid, G) is unchanged;
        open the segment files covering rows [0, W) of each collection, cut at W.
     A checkpoint opened in (b) was written, before the copy began, from committed rows of
     the same generation, and W only grows within a generation: its watermark is <= the W
     of the copy. Restore replays the rows past it.
  3. The members are streamed into the archive (archive.py) with no lock and no transaction
     held: rows [0, W) of a generation never change, and the open descriptors survive a
     writer's renames (new checkpoints) and deletes (vacuum).

restore(archive, dest_dir): extracts and verifies the archive into a staging folder next
to dest_dir, opens the database there once (each collection maps its checkpoints and replays
the rows past them; closing writes fresh checkpoints), fsyncs, and renames it to dest_dir.

Invariants:
 1. An archive holds the state of exactly one committed LMDB snapshot: the LMDB copy,
    segments cut at its W, checkpoints with watermarks <= its W.
 2. backup holds the write lock only for step 1 and an LMDB read transaction only for the
    copy in step 2c (about a second per GB); compression and writing run with neither, so
    writes go on meanwhile.
 3. restore writes nothing at dest_dir unless the whole archive verified and the restored
    database opened with the row counts of the manifest; any failure removes the staging
    folder and leaves dest_dir as it was.

    >>> import tempfile, os, numpy as np, vecdb
    >>> d = tempfile.mkdtemp()
    >>> with vecdb.open(os.path.join(d, "db")) as db:
    ...     db.create_collection("docs", dim=2).add(ids=["a"], vectors=[[1, 0]])
    ...     db.backup(os.path.join(d, "db.vdb.tar.zst"))["collections"][0]["rows"]
    1
    >>> report = vecdb.restore(os.path.join(d, "db.vdb.tar.zst"), os.path.join(d, "copy"))
    >>> report["restored"][0]["live"], report["restored"][0]["rebuilt"]
    (1, False)
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import lmdb

from ..errors import (
    ArchiveError,
    CorruptionError,
    DatabaseLockedError,
    InvalidArgumentError,
)
from ..index.hnsw import HnswIndex
from ..index.ivfpq import IvfPqIndex
from ..rowset import generation_dir
from ..storage import keys
from ..storage.catalog import CollectionInfo
from ..storage.colfile import FILE_NAME as FILTERS_FILE
from ..storage.env import FORMAT_VERSION as DB_FORMAT_VERSION
from ..storage.env import SUBDBS
from ..storage.segments import HEADER_BYTES, IDS, VECTORS, segment_shift_for
from .archive import (
    CHECKPOINT_FILES,
    FORMAT_VERSION,
    HEADER_MEMBER,
    LMDB_MEMBER,
    MAGIC,
    ArchiveWriter,
    extract,
    fsync_dir,
    header_bytes,
)
from .formats import check_path
from .progress import check_progress, progress_bar

if TYPE_CHECKING:  # pragma: no cover
    from ..database import Database

SNAPSHOT_ATTEMPTS = 5
RESTORE_BATCH = 64  # collections a restore holds open at a time (their graphs in RAM)
PathArg = Union[str, "os.PathLike[str]"]
State = tuple[int, int, int, int]  # (W, T, G, E), keys.unpack_state


@dataclass
class _File:
    """One member of a snapshot: bytes [0, size) of an open file."""

    path: str   # its path in the archive
    fd: int
    size: int
    label: str  # where it comes from (for messages)


class _Moved(Exception):
    """A generation switched (vacuum) or a collection came or went during the snapshot."""

    def __init__(self, missing: Any = None) -> None:
        super().__init__()
        self.missing = missing  # (cid, generation, path) of a segment file not found


@dataclass
class Snapshot:
    """What one backup copies: the collections as of one LMDB snapshot and its files."""

    created: float
    collections: list[dict[str, Any]]
    files: list[_File] = field(default_factory=list)

    def close(self) -> None:
        _close_all(self.files)


def _close_all(files: list[_File]) -> None:
    for f in files:
        if f.fd >= 0:
            os.close(f.fd)
            f.fd = -1


# -- snapshot ---------------------------------------------------------------------------------

def _read_collections(txn: Any, dbs: dict[str, Any]) -> dict[int, tuple[CollectionInfo, State]]:
    """cid -> (catalog entry, state) of every collection, as txn sees them."""
    out = {}
    with txn.cursor(db=dbs["catalog"]) as cur:
        for key, raw in cur:
            info = CollectionInfo.from_bytes(key.decode("utf-8"), raw)
            state = txn.get(info.prefix, db=dbs["state"])
            if state is None:
                raise CorruptionError(f"collection {info.name!r} has a catalog entry but no "
                                      f"state")
            out[info.cid] = (info, keys.unpack_state(state))
    return out


def _folder(db: Database, info: CollectionInfo, gen: int) -> tuple[str, str]:
    """(absolute path, archive path) of a collection generation's folder."""
    from ..database import COLLECTIONS_DIR
    path = generation_dir(os.path.join(db.path, COLLECTIONS_DIR, info.uuid), gen)
    return path, f"{COLLECTIONS_DIR}/{os.path.basename(path)}"


def _open(path: str, member: str, need: int = -1) -> _File:
    """_File of the file at path, whole (need < 0) or its first need bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    size = os.fstat(fd).st_size
    if size < need:
        os.close(fd)
        raise CorruptionError(f"{path!r} holds {size} bytes, but the committed rows need "
                              f"{need}")
    return _File(member, fd, size if need < 0 else need, path)


def _open_checkpoints(db: Database, info: CollectionInfo, gen: int) -> list[_File]:
    folder, member = _folder(db, info, gen)
    files = []
    for name in CHECKPOINT_FILES:
        try:
            files.append(_open(os.path.join(folder, name), f"{member}/{name}"))
        except FileNotFoundError:
            continue
    return files


def _open_segments(db: Database, info: CollectionInfo, state: State,
                   files: list[_File]) -> None:
    """Appends to files the vector and id segments covering rows [0, W), cut at W."""
    watermark, gen = state[0], state[2]
    folder, member = _folder(db, info, gen)
    for stem, ext, dtype, _ in (VECTORS, IDS):
        row_bytes = (info.dim if stem == VECTORS[0] else 1) * dtype.itemsize
        shift = segment_shift_for(row_bytes)
        for number in range((watermark + (1 << shift) - 1) >> shift):
            rows = min(1 << shift, watermark - (number << shift))
            name = f"{stem}.{number}.{ext}"
            path = os.path.join(folder, name)
            try:
                files.append(_open(path, f"{member}/{name}", HEADER_BYTES + rows * row_bytes))
            except FileNotFoundError:
                raise _Moved((info.cid, gen, path)) from None


def _copy_lmdb(env: Any, tmp_dir: str) -> tuple[_File, dict[int, tuple[CollectionInfo, State]]]:
    """LMDB's own copy of the environment (``mdb_env_copy``: every page up to the last one
    used, read in one read transaction of its own), as an already unlinked data.mdb, and
    the collections (catalog entries and states) that copy holds.

    Not the compacting copy: py-lmdb 3.0 crashes (SIGSEGV) in it once a dupsort+dupfixed
    table (our postings) holds sub-databases. Not a copy inside a transaction of ours: only
    the compacting copy takes one. Reading the snapshot's collections back from the copy
    itself makes the copy the snapshot."""
    folder = tempfile.mkdtemp(dir=tmp_dir, prefix=".vecdb-backup-")
    try:
        with env.guard.shared():  # no map resize meanwhile (storage/env.py, invariant 1)
            env._check_open()
            env.env.copy(folder)
        copy = lmdb.open(folder, readonly=True, lock=False, subdir=True, max_dbs=len(SUBDBS),
                         readahead=False)
        try:
            dbs = {name: copy.open_db(name.encode(), create=False)
                   for name in ("catalog", "state")}
            with copy.begin() as txn:
                collections = _read_collections(txn, dbs)
        finally:
            copy.close()
        fd = os.open(os.path.join(folder, "data.mdb"), os.O_RDONLY | os.O_CLOEXEC)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _File(LMDB_MEMBER, fd, os.fstat(fd).st_size, "the LMDB copy"), collections


def take_snapshot(db: Database, tmp_dir: str) -> Snapshot:
    """Opens every file of one consistent snapshot (module docstring, step 2)."""
    env = db._env
    for _ in range(SNAPSHOT_ATTEMPTS):
        with env.read() as txn:
            plan = _read_collections(txn, env.dbs)
        segments: dict[int, list[_File]] = {}
        opened: list[_File] = []
        try:
            checkpoints = {}
            for cid, (info, state) in plan.items():
                checkpoints[cid] = _open_checkpoints(db, info, state[2])
                opened += checkpoints[cid]
            lmdb_copy, now = _copy_lmdb(env, tmp_dir)
            opened.append(lmdb_copy)
            if {c: s[2] for c, (_, s) in now.items()} != \
                    {c: s[2] for c, (_, s) in plan.items()}:
                raise _Moved()
            for cid, (info, state) in now.items():
                segments[cid] = []
                try:
                    _open_segments(db, info, state, segments[cid])
                finally:
                    opened += segments[cid]
        except _Moved as moved:
            _close_all(opened)
            if moved.missing is not None:
                _check_really_moved(db, *moved.missing)
            continue
        except BaseException:
            _close_all(opened)
            raise
        snap = Snapshot(time.time(), [], [lmdb_copy])
        for cid, (info, state) in sorted(now.items(), key=lambda item: item[1][0].name):
            snap.files += segments[cid] + checkpoints[cid]
            snap.collections.append(_describe(db, info, state))
        return snap
    raise DatabaseLockedError(
        f"backup: the collections of {db.path!r} kept changing generation (vacuum) or "
        f"coming and going during {SNAPSHOT_ATTEMPTS} snapshot attempts; try again")


def _check_really_moved(db: Database, cid: int, gen: int, path: str) -> None:
    """A segment file was missing: fine if its generation has moved on since, else the
    database is damaged."""
    with db._env.read() as txn:
        now = _read_collections(txn, db._env.dbs).get(cid)
    if now is not None and now[1][2] == gen:
        raise CorruptionError(f"vector segment {path!r} is missing")


def _describe(db: Database, info: CollectionInfo, state: State) -> dict[str, Any]:
    watermark, tombstones, gen, _ = state
    return {"name": info.name, "uuid": info.uuid, "generation": gen,
            "folder": _folder(db, info, gen)[1], "dim": info.dim, "metric": info.metric,
            "index": info.index, "rows": watermark, "live": watermark - tombstones}


# -- backup -----------------------------------------------------------------------------------

def _check_dest(dest: Any) -> str:
    path = os.path.abspath(check_path(dest, "dest"))
    if os.path.isdir(path):
        raise InvalidArgumentError(f"dest: {path!r} is a directory; give the archive's file "
                                   f"path, e.g. 'nightly.vdb.tar.zst'")
    if not os.path.isdir(os.path.dirname(path)):
        raise InvalidArgumentError(f"dest: the folder of {path!r} does not exist")
    return path


def _check_level(level: Any) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 22:
        raise InvalidArgumentError(f"level: expected a zstandard level 1-22, got {level!r}")
    return level


def _checkpoint_loaded(db: Database) -> None:
    """Step 1: the checkpoints of every loaded collection, under the write lock."""
    with db._writing():
        for col in list(db._collections.values()):
            if not col._dropped:
                col.flush()


def backup(db: Database, dest: PathArg, *, level: int = 3,
           progress: Any = False) -> dict[str, Any]:
    """Writes the archive dest (see the module docstring) and returns its manifest plus
    ``archive_bytes``; progress counts the uncompressed bytes read.

    >>> db.backup("nightly.vdb.tar.zst", progress=True)["archive_bytes"]  # doctest: +SKIP
    """
    db._check_open()
    path = _check_dest(dest)
    level = _check_level(level)
    progress = check_progress(progress)
    if not db.readonly:
        _checkpoint_loaded(db)
    snap = take_snapshot(db, os.path.dirname(path))
    try:
        from .. import __version__
        header = header_bytes({"vecdb_version": __version__,
                               "db_format_version": DB_FORMAT_VERSION})
        raw_bytes = len(header) + sum(f.size for f in snap.files)
        with progress_bar(progress, raw_bytes, "backup", "B") as bar:
            writer = ArchiveWriter(path, level, bar.update, snap.created)
            try:
                writer.add_bytes(HEADER_MEMBER, header)
                bar.update(len(header))
                for f in snap.files:
                    writer.add_file(f.path, f.fd, f.size, f.label)
                manifest = {"magic": MAGIC, "format_version": FORMAT_VERSION,
                            "vecdb_version": __version__,
                            "db_format_version": DB_FORMAT_VERSION,
                            "created": snap.created, "collections": snap.collections,
                            "members": writer.members, "raw_bytes": raw_bytes}
                archive_bytes = writer.finish(manifest)
            except BaseException:
                writer.abort()
                raise
    finally:
        snap.close()
    return {**manifest, "archive_bytes": archive_bytes}


# -- restore ----------------------------------------------------------------------------------

def _check_archive(archive: Any) -> str:
    path = os.path.abspath(check_path(archive, "archive"))
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"archive: no archive file at {path!r}")
    return path


def _check_dest_dir(dest_dir: Any) -> str:
    path = os.path.abspath(check_path(dest_dir, "dest_dir", "directory path"))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise InvalidArgumentError(f"dest_dir: {path!r} exists and is not a directory")
        if os.listdir(path):
            raise InvalidArgumentError(f"dest_dir: {path!r} is not empty; restore into a new "
                                       f"or empty directory")
    elif not os.path.isdir(os.path.dirname(path)):
        raise InvalidArgumentError(f"dest_dir: the folder of {path!r} does not exist")
    return path


def restore(archive: PathArg, dest_dir: PathArg, *, progress: Any = False) -> dict[str, Any]:
    """Restores the archive into dest_dir (new or empty) and returns its manifest, plus
    ``restored``: per collection its rows, live items, the rows replayed past the graph
    checkpoint and whether an index had to be rebuilt. progress counts the archive's bytes.

    >>> vecdb.restore("nightly.vdb.tar.zst", "./restored.vdb")["collections"]  # doctest: +SKIP
    """
    source = _check_archive(archive)
    dest = _check_dest_dir(dest_dir)
    progress = check_progress(progress)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.restore-",
                               dir=os.path.dirname(dest))
    try:
        with progress_bar(progress, os.path.getsize(source), "restore", "B") as bar:
            manifest = extract(source, staging, bar.update)
        restored = _open_restored(staging, manifest, source)
        _fsync_tree(staging)
        try:
            os.rename(staging, dest)  # also over an empty directory
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise InvalidArgumentError(f"dest_dir: {dest!r} was filled during the "
                                           f"restore; nothing was restored") from None
            raise
        fsync_dir(os.path.dirname(dest))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {**manifest, "restored": restored}


def _expected(manifest: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    out = {}
    for entry in manifest["collections"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or \
                type(entry.get("rows")) is not int or type(entry.get("live")) is not int:
            raise ArchiveError(f"archive {source!r}: the manifest has a malformed collection "
                               f"entry {entry!r}")
        out[entry["name"]] = entry
    return out


def _open_restored(staging: str, manifest: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """Opens the extracted database once, RESTORE_BATCH collections at a time: each maps its
    checkpoints and replays the rows past them (its filter columns too, when they have a
    checkpoint); the graph checkpoints' body checksums are awaited (a failed one is rebuilt
    now, with a warning); closing writes the fresh checkpoints. Returns what each collection
    did; ArchiveError if the row counts disagree with the manifest."""
    from ..database import Database
    expected = _expected(manifest, source)
    db = Database(staging, durability="full", auto_vacuum=None)
    try:
        names = db.list_collections()
        if names != sorted(expected):
            raise ArchiveError(f"archive {source!r}: its database holds collections {names}, "
                               f"the manifest lists {sorted(expected)}")
        reports = []
        for start in range(0, len(names), RESTORE_BATCH):
            batch = [db.get_collection(name) for name in names[start:start + RESTORE_BATCH]]
            reports += [_replay(db, col, expected[col.name], source) for col in batch]
            for col, report in zip(batch, reports[start:]):
                index = col._rows.index
                if isinstance(index, HnswIndex) and not index.wait_verified():
                    col._rows.extend_index()  # the body checksum failed: rebuilt, warned
                    report["rebuilt"], report["replayed_rows"] = True, 0
                with db._handles_lock:
                    db._collections.pop(col.name, None)
                col._close(sync=True)  # writes the checkpoints that moved
    finally:
        db.close()
    return reports


def _replay(db: Database, col: Any, want: dict[str, Any], source: str) -> dict[str, Any]:
    """What opening col did: its rows, live items, rows replayed past the graph checkpoint
    (None for IVF-PQ, which does not count them) and whether an index was rebuilt or
    trained again (its checkpoint was missing)."""
    rows = col._rows
    if (rows.watermark, rows.live) != (want["rows"], want["live"]):
        raise ArchiveError(
            f"archive {source!r}: collection {col.name!r} restored with {rows.watermark} "
            f"rows ({rows.live} live), the manifest says {want['rows']} ({want['live']} live)")
    report = {"name": col.name, "rows": rows.watermark, "live": rows.live,
              "replayed_rows": 0, "rebuilt": False}
    index = rows.index
    if isinstance(index, HnswIndex):
        stats = index.stats()
        trainings = index.codes.trainings if index.codes is not None else 0
        report["rebuilt"] = stats["rebuilds"] > 0 or trainings > 0
        report["replayed_rows"] = 0 if stats["rebuilds"] else \
            rows.watermark - stats["checkpoint_nodes"]
    elif isinstance(index, IvfPqIndex):
        report["rebuilt"] = index.trainings > 0
        report["replayed_rows"] = None
    if os.path.exists(os.path.join(rows.directory, FILTERS_FILE)):
        rows.filters.run(db._env, col._prefix, lambda store: None)  # catch up, then saved
    return report


def _fsync_tree(root: str) -> None:
    """fsyncs every folder under root, deepest first (the files are synced already)."""
    for folder, _, _ in sorted(os.walk(root), key=lambda item: -item[0].count(os.sep)):
        fsync_dir(folder)
