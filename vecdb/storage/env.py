"""The LMDB environment of a database directory: sub-databases, map growth, format check.

LMDB forbids opening one environment twice in a process, so environments are shared per
directory through a process-wide registry with a reference count.

Invariants:
 1. Every LMDB transaction of this process runs while holding the ``guard`` in shared mode;
    changing the map size or closing takes it in exclusive mode (LMDB requires that no
    transaction of the process is active then). Hence no query ever runs over an unmapped map.
 2. A write transaction that hits MapFullError is aborted, the map doubled, and the whole
    transaction function run again: callers never see MapFullError, and a batch is
    all-or-nothing. Another process that grew the map is followed on MapResizedError.
 3. ``meta`` holds the database magic and format version, written once at creation; a newer
    format is refused, a directory with LMDB files but no magic is refused.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

import lmdb

from ..errors import CorruptionError, DatabaseClosedError, FormatVersionError

FORMAT_VERSION = 1
MAGIC = b"vecdb-lmdb"
INITIAL_MAP_SIZE = 64 << 20
LONG_READ_HEADROOM = 1 << 30  # free map space reserved before a long read (Env.reserve)
SUBDBS = ("meta", "catalog", "rows", "ids", "tombs", "state", "edits", "postings")
# Tables added after format 1 was first written: a read-only open of a database that no
# writer of this version has opened yet finds them missing, and they are then empty (None).
LATER_SUBDBS = ("edits", "postings")
# Open flags of tables that are not plain key -> value maps (postings.py: sorted,
# fixed-size duplicates per term).
SUBDB_FLAGS = {"postings": {"dupsort": True, "dupfixed": True}}

T = TypeVar("T")


class RWGuard:
    """Many shared holders or one exclusive holder; exclusive waiters block new shared ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    def acquire_shared(self) -> None:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1

    def release_shared(self) -> None:
        with self._cond:
            self._shared -= 1
            if not self._shared:
                self._cond.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        self.acquire_shared()
        try:
            yield
        finally:
            self.release_shared()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class Env:
    """One open LMDB environment with vecdb's sub-databases (shared by a process's handles)."""

    def __init__(self, directory: str, key: tuple, sync: bool) -> None:
        self.directory = directory
        self._key = key
        self._refs = 0
        self.guard = RWGuard()
        writable = os.access(directory, os.W_OK)
        self.env = lmdb.open(
            directory, map_size=INITIAL_MAP_SIZE, max_dbs=len(SUBDBS), readonly=not writable,
            subdir=True, sync=sync, metasync=sync, readahead=False, max_readers=1022,
            create=writable, lock=True,
        )
        self.writable = writable
        self.synced_commits = sync
        self.closed = False
        try:
            if writable:
                with self.env.begin(write=True) as txn:
                    self.dbs = {n: self.env.open_db(n.encode(), txn=txn,
                                                    **SUBDB_FLAGS.get(n, {}))
                                for n in SUBDBS}
            else:
                self.dbs = {n: self._open_existing(n) for n in SUBDBS}
            self._check_format()
        except lmdb.NotFoundError:
            self.env.close()
            raise CorruptionError(f"{directory!r} is not a vecdb database (missing tables)") from None
        except BaseException:
            self.env.close()
            raise

    def _open_existing(self, name: str) -> Any:
        try:
            return self.env.open_db(name.encode(), create=False, **SUBDB_FLAGS.get(name, {}))
        except lmdb.NotFoundError:
            if name in LATER_SUBDBS:
                return None
            raise

    def _check_format(self) -> None:
        with self.env.begin(write=self.writable, db=self.dbs["meta"]) as txn:
            magic = txn.get(b"magic")
            if magic is None:
                if txn.stat(self.dbs["catalog"])["entries"] or not self.writable:
                    raise CorruptionError(f"{self.directory!r} is not a vecdb database (no magic)")
                txn.put(b"magic", MAGIC)
                txn.put(b"format_version", str(FORMAT_VERSION).encode())
                return
            if magic != MAGIC:
                raise CorruptionError(f"{self.directory!r} has a bad magic {magic!r}")
            version = int(txn.get(b"format_version", b"0"))
            if version > FORMAT_VERSION:
                raise FormatVersionError(
                    f"{self.directory!r} has format version {version}, newer than this vecdb "
                    f"supports ({FORMAT_VERSION}); upgrade vecdb"
                )
            if version < 1:
                raise CorruptionError(f"{self.directory!r} has unknown format version {version}")

    # -- transactions ------------------------------------------------------------------------

    def read(self) -> "_ReadTxn":
        """A read transaction (snapshot) held under the shared guard: ``with env.read() as txn``."""
        return _ReadTxn(self)

    def write(self, fn: "Callable[[lmdb.Transaction], T]", sync: bool) -> T:
        """Runs fn in a write transaction and commits; grows the map and retries when full.

        sync=True makes the commit durable before returning (LMDB syncs it itself when the
        environment was opened with synced commits, else an explicit flush follows).
        """
        while True:
            try:
                with self.guard.shared():
                    self._check_open()
                    txn = self.env.begin(write=True)
                    try:
                        result = fn(txn)
                    except BaseException:
                        txn.abort()
                        raise
                    txn.commit()
                if sync and not self.synced_commits:
                    self.env.sync(True)
                return result
            except lmdb.MapFullError:
                self._grow()
            except lmdb.MapResizedError:
                self._adopt_map_size()

    def reserve(self, headroom: int = LONG_READ_HEADROOM) -> None:
        """Grows the map now, if needed, so that at least max(headroom, the used size)
        bytes are free. Called before a long read transaction (an export):
        while one is open no write of this process can grow the map (invariant 1), so the
        writes that go on meanwhile get their room first. A larger map costs address space
        only; the file grows with the pages written."""
        if not self.writable:
            return  # the writer is another process, which grows the map regardless
        with self.guard.shared():
            self._check_open()
            info, page = self.env.info(), self.env.stat()["psize"]
            used = (info["last_pgno"] + 1) * page
            want = used + max(headroom, used)
            if info["map_size"] >= want:
                return
        with self.guard.exclusive():
            step = INITIAL_MAP_SIZE
            self.env.set_mapsize(max(self.env.info()["map_size"], (want + step - 1) // step * step))

    def _check_open(self) -> None:
        if self.closed:
            raise DatabaseClosedError(f"database {self.directory!r} is closed")

    def _grow(self) -> None:
        with self.guard.exclusive():
            self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def _adopt_map_size(self) -> None:
        with self.guard.exclusive():
            self.env.set_mapsize(0)

    def sync(self) -> None:
        if self.writable and not self.closed:
            self.env.sync(True)


class _ReadTxn:
    """Context manager of Env.read() (a class: a query pays for it, a generator costs more)."""

    __slots__ = ("env", "txn")

    def __init__(self, env: Env) -> None:
        self.env = env

    def __enter__(self) -> "lmdb.Transaction":
        env = self.env
        while True:
            env.guard.acquire_shared()
            try:
                env._check_open()
                self.txn = env.env.begin(buffers=False)
                return self.txn
            except lmdb.MapResizedError:  # another process grew the map: adopt it, retry
                env.guard.release_shared()
                env._adopt_map_size()
            except BaseException:
                env.guard.release_shared()
                raise

    def __exit__(self, *exc: object) -> None:
        try:
            self.txn.abort()
        finally:
            self.env.guard.release_shared()


_registry: "dict[tuple, Env]" = {}
_registry_lock = threading.Lock()


def acquire(directory: str, sync: bool) -> Env:
    """The shared Env of directory (opened on first use); pair with release().

    sync (synced LMDB commits) is decided by the first opener in the process.
    """
    st = os.stat(directory)
    key = (st.st_dev, st.st_ino)
    with _registry_lock:
        env = _registry.get(key)
        if env is None:
            env = _registry[key] = Env(directory, key, sync)
        env._refs += 1
        return env


def release(env: Env) -> None:
    """Drops one reference; the last one closes the environment."""
    with _registry_lock:
        env._refs -= 1
        if env._refs:
            return
        del _registry[env._key]
    with env.guard.exclusive():
        env.closed = True
        env.env.close()
