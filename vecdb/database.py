"""Database: one directory, its writer lock, its LMDB environment and its collections.

Invariants:
 1. A writable Database holds the directory's writer lock (storage/lock.py) from open to
    close; a read-only one never takes it and refuses every write with ReadOnlyError.
 2. Writes of all collections of one Database are serialized by one lock (one writer thread
    at a time); queries never take it.
 3. There is one Collection object per collection per Database, so every handle a user gets
    shares the same in-memory state.

    >>> import tempfile, vecdb
    >>> with vecdb.open(tempfile.mkdtemp()) as db:
    ...     _ = db.create_collection("docs", dim=3)
    ...     db.list_collections()
    ['docs']
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Union

from . import validate
from .collection import Collection
from .rowset import remove_generation_dirs
from .textindex import TEXT_INDEX_KEY
from .config import IVFPQ, check_index, check_pq_m, check_quantization, check_text_index
from .errors import (CollectionExistsError, CollectionNotFoundError, DatabaseClosedError,
                     DatabaseNotFoundError, InvalidArgumentError, ReadOnlyError)
from .storage import catalog, env as envmod
from .storage.lock import WriterLock
from .types import DURABILITIES, METRICS, Durability, Metric

COLLECTIONS_DIR = "collections"


class Database:
    """An open vecdb directory. Create it with ``vecdb.open(path)``."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, readonly: bool = False,
                 durability: Durability = "full", timeout: float = 5.0,
                 auto_vacuum: Optional[float] = 0.5) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentError(f"path: expected str or os.PathLike, got {path!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.readonly = bool(readonly)
        self.durability = validate.choice(durability, "durability", DURABILITIES)
        if auto_vacuum is not None and (isinstance(auto_vacuum, bool) or not isinstance(
                auto_vacuum, (int, float)) or not 0 < auto_vacuum <= 1):
            raise InvalidArgumentError(
                f"auto_vacuum: expected a share in (0, 1] or None, got {auto_vacuum!r}")
        self.auto_vacuum = auto_vacuum
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise InvalidArgumentError(f"timeout: expected a number of seconds >= 0, got {timeout!r}")
        self._check_path()
        self._write_lock = threading.RLock()
        self._handles_lock = threading.Lock()
        self._collections: Dict[str, Collection] = {}
        self._lock: Optional[WriterLock] = None
        self._env: Any = None
        if not self.readonly:
            os.makedirs(self.path, exist_ok=True)
            self._lock = WriterLock.acquire(self.path, timeout)
        try:
            self._env = envmod.acquire(self.path, sync=self.durability == "full")
        except BaseException:
            if self._lock:
                self._lock.release()
            raise
        self._closed = False

    def _check_path(self) -> None:
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise InvalidArgumentError(
                f"path: {self.path!r} exists and is not a directory (a database is a directory)"
            )
        if self.readonly and not os.path.exists(os.path.join(self.path, "data.mdb")):
            raise DatabaseNotFoundError(
                f"path: no vecdb database at {self.path!r} (readonly=True does not create one)"
            )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"database {self.path!r} is closed")

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Holds the write lock of this Database after checking it is open and writable."""
        self._check_open()
        if self.readonly:
            raise ReadOnlyError(f"database {self.path!r} was opened with readonly=True")
        with self._write_lock:
            self._check_open()
            yield

    def close(self) -> None:
        """Flushes (unless durability="off"), releases the writer lock and closes. Idempotent."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            for col in self._collections.values():
                col._close(sync=self.durability != "off")
            self._collections.clear()
            if not self.readonly and self.durability != "off":
                self._env.sync()
            envmod.release(self._env)
            if self._lock:
                self._lock.release()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _state(self) -> str:
        return "closed" if self._closed else ("readonly" if self.readonly else "open")

    def __repr__(self) -> str:
        if self._closed:
            return f"Database({self.path!r}, closed)"
        from .display import database_summary
        summary, total = database_summary(self)
        counts = ", ".join(f"{c['name']!r}: {c['count']}" for c in summary)
        more = f", … +{total - len(summary)} more" if total > len(summary) else ""
        return f"Database({self.path!r}, collections={{{counts}{more}}}, {self._state()})"

    def _repr_html_(self) -> str:
        """The path and state, and one row per collection (name, count, dim, metric, index,
        quantization, text index), read from the catalog without opening any collection."""
        from . import display
        title = f"Database {self.path} ({self._state()})"
        if self._closed:
            return display.html_fields([], title=title)
        summary, total = display.database_summary(self)
        rows = [[c["name"], f"{c['count']:,}", str(c["dim"]), c["metric"], repr(c["index"]),
                 repr(c["quantization"]) if c["quantization"] else "",
                 repr(c["text_index"]) if c["text_index"] else ""] for c in summary]
        table = display.html_table(
            ["collection", "count", "dim", "metric", "index", "quantization", "text index"],
            rows, caption=f"{title}: {total} collection{'' if total == 1 else 's'}",
            footer=display.more_line(len(rows), total, "collections"), wide=("index",))
        return f"<div class='vecdb'>{table}</div>"

    # -- collections -------------------------------------------------------------------------

    def _collection_dir(self, info: catalog.CollectionInfo) -> str:
        return os.path.join(self.path, COLLECTIONS_DIR, info.uuid)

    def _lookup(self, name: str) -> Optional[catalog.CollectionInfo]:
        with self._env.read() as txn:
            return catalog.get(txn, self._env.dbs, name)

    def _handle(self, info: catalog.CollectionInfo) -> Collection:
        col = self._collections.get(info.name)
        if col is None or col._info.cid != info.cid:
            col = self._collections[info.name] = Collection(self, info, self._collection_dir(info))
        return col

    def create_collection(self, name: str, *, dim: int, metric: Metric = "cosine",
                          index: Any = None, quantization: Any = None,
                          text_index: Any = True) -> Collection:
        """Creates a collection; ``CollectionExistsError`` if the name is taken.

        ``index``: ``vecdb.HNSW(...)`` (the default), ``vecdb.IVFPQ(...)`` or ``vecdb.Flat()``;
        ``quantization`` (HNSW only): ``vecdb.SQ8()`` or ``vecdb.PQ(m=...)`` to traverse
        compressed codes in RAM and rescore from the float32 vectors on disk. ``text_index``:
        keep BM25 postings of the documents (written with each batch) for keyword and hybrid
        search: True (``vecdb.BM25()``), a ``vecdb.BM25(k1=, b=, stopwords=)``, or False.

        >>> docs = db.create_collection("docs", dim=384, metric="cosine")  # doctest: +SKIP
        >>> big = db.create_collection("big", dim=384, quantization=vecdb.PQ(m=48))  # doctest: +SKIP
        """
        name = validate.name(name)
        dim = validate.dim(dim)
        metric = validate.choice(metric, "metric", METRICS)
        config = check_index(index)
        quant = check_quantization(quantization, config, dim)
        if isinstance(config, IVFPQ):
            check_pq_m(config.m, dim, "index")
        text = check_text_index(text_index)
        stored = config.to_dict()
        if quant is not None:
            stored["quantization"] = quant.to_dict()
        stored[TEXT_INDEX_KEY] = False if text is None else text.to_dict()
        with self._writing():
            def transaction(txn: Any) -> catalog.CollectionInfo:
                if catalog.get(txn, self._env.dbs, name) is not None:
                    raise CollectionExistsError(f"name: collection {name!r} already exists")
                return catalog.create(txn, self._env.dbs, name, dim, metric, stored)

            info = self._env.write(transaction, sync=self.durability == "full")
            with self._handles_lock:
                return self._handle(info)

    def get_collection(self, name: str) -> Collection:
        """The collection called name; ``CollectionNotFoundError`` if there is none."""
        self._check_open()
        name = validate.name(name)
        info = self._lookup(name)
        if info is None:
            raise CollectionNotFoundError(f"name: no collection {name!r} in {self.path!r}")
        with self._handles_lock:
            return self._handle(info)

    def get_or_create_collection(self, name: str, *, dim: int, metric: Metric = "cosine",
                                 index: Any = None, quantization: Any = None,
                                 text_index: Any = True) -> Collection:
        """The existing collection (whose dim and metric must match), or a new one (index
        and quantization apply to a new one only)."""
        self._check_open()
        name = validate.name(name)
        info = self._lookup(name)
        if info is None:
            try:
                return self.create_collection(name, dim=dim, metric=metric, index=index,
                                              quantization=quantization, text_index=text_index)
            except CollectionExistsError:  # created meanwhile by another thread
                info = self._lookup(name)
        if info.dim != dim or info.metric != metric:
            raise InvalidArgumentError(
                f"dim/metric: collection {name!r} exists with dim={info.dim}, "
                f"metric={info.metric!r}; asked for dim={dim!r}, metric={metric!r}"
            )
        with self._handles_lock:
            return self._handle(info)

    def list_collections(self) -> List[str]:
        """Names of all collections, sorted."""
        self._check_open()
        with self._env.read() as txn:
            return sorted(catalog.names(txn, self._env.dbs))

    def drop_collection(self, name: str) -> None:
        """Deletes a collection and all its data; ``CollectionNotFoundError`` if missing."""
        name = validate.name(name)
        with self._writing():
            def transaction(txn: Any) -> catalog.CollectionInfo:
                info = catalog.get(txn, self._env.dbs, name)
                if info is None:
                    raise CollectionNotFoundError(f"name: no collection {name!r} in {self.path!r}")
                catalog.drop(txn, self._env.dbs, info)
                return info

            info = self._env.write(transaction, sync=self.durability == "full")
            with self._handles_lock:
                col = self._collections.pop(name, None)
            if col is not None:
                col._close(dropped=True)
            remove_generation_dirs(self._collection_dir(info))

    # -- operations (vecdb/io) ---------------------------------------------------------------

    def backup(self, dest: Union[str, "os.PathLike[str]"], *, level: int = 3,
               progress: Any = False) -> Dict[str, Any]:
        """Writes a consistent snapshot of every collection to the archive ``dest``
        (``.vdb.tar.zst``) while the database stays open and writable; returns its manifest.

        Restore it with ``vecdb.restore(dest, new_dir)``. ``level``: zstandard level (1-22);
        ``progress``: True for a progress bar, or a callable ``fn(done, total)``.

        >>> db.backup("nightly.vdb.tar.zst")["collections"][0]["rows"]  # doctest: +SKIP
        5000
        """
        from .io.backup import backup
        return backup(self, dest, level=level, progress=progress)

    def check(self, *, repair: bool = False, progress: Any = False) -> Any:
        """Verifies catalog, id maps, segments, graph and quantizer checkpoints, filter columns
        and text postings against each other; returns a ``CheckReport`` (``report.ok``,
        ``report.problems``). ``repair=True`` (writable databases only) rebuilds what is
        derived (indexes, filter columns, postings, id map) from LMDB and the segments.

        >>> db.check().ok  # doctest: +SKIP
        True
        """
        from .io.check import check
        return check(self, repair=repair, progress=progress)

    def import_(self, name: str, path: Union[str, "os.PathLike[str]"], *,
                format: Optional[str] = None, dim: Optional[int] = None,
                metric: Optional[Metric] = None, index: Any = None, quantization: Any = None,
                text_index: Any = True, mode: str = "add", ids: Any = None,
                batch_size: int = 10_000, progress: Any = False) -> Collection:
        """Loads a JSONL, Parquet or .npy file into collection ``name`` (created when missing:
        dim from the file, metric and index from the arguments or, for a file written by
        ``col.export``, from the file) and returns it. See ``Collection.add_from``.

        >>> col = db.import_("docs", "docs.parquet")  # doctest: +SKIP
        """
        from .io.transfer import import_into
        return import_into(self, name, path, format=format, dim=dim, metric=metric,
                           index=index, quantization=quantization, text_index=text_index,
                           mode=mode, ids=ids, batch_size=batch_size, progress=progress)


def open(path: Union[str, "os.PathLike[str]"], *, readonly: bool = False,
         durability: Durability = "full", timeout: float = 5.0,
         auto_vacuum: Optional[float] = 0.5) -> Database:
    """Opens (creating it if missing, unless readonly) the database directory at path.

    durability: "full" fsyncs every commit; "normal" leaves recent commits to the OS (a power
    cut may lose them, a process crash cannot) and syncs on flush/close; "off" never syncs on
    its own. timeout: seconds to wait for another writer before ``DatabaseLockedError``.
    auto_vacuum: when deleted and replaced rows pass this share of a collection's rows (and
    number at least 1,024), the write that crossed it also runs ``vacuum()``; None turns it
    off (like SQLite's auto_vacuum).

    >>> import tempfile, vecdb
    >>> db = vecdb.open(tempfile.mkdtemp(), durability="normal")
    >>> db.close()
    """
    return Database(path, readonly=readonly, durability=durability, timeout=timeout,
                    auto_vacuum=auto_vacuum)
