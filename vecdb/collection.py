"""Collection: the public face of one named set of vectors with ids, metadata and documents.

A collection's state is split the way DESIGN.md §3 says:
  - LMDB (source of truth): id -> row, row -> record (id, metadata, document), the tombstone
    log (sequence -> row) and the state (watermark W, tombstone count T);
  - segment files: the float32 rows [0, W) (rows past W are leftovers of an interrupted
    write and are ignored);
  - memory: W, T and the tombstone bitset, derived from LMDB at open.

Invariants:
 1. Every row in [0, W) is either live (exactly one id maps to it) or tombstoned (it appears
    once in the tombstone log). Hence count() == W - T.
 2. A write follows the protocol: validate everything; append vectors at [W, W + n) and flush
    them (durability="full"); one LMDB transaction; only then update memory. A failure at any
    step before the commit leaves the collection as it was.
 3. Under the cosine metric rows and queries are stored/searched unit-normalized, and the C
    kernels run inner product on them.

    >>> import tempfile, numpy as np, vecdb
    >>> db = vecdb.open(tempfile.mkdtemp())
    >>> col = db.create_collection("docs", dim=2, metric="l2")
    >>> col.add(ids=["a", "b"], vectors=[[0, 0], [1, 1]], documents=["origin", "one"])
    >>> col.query([0.9, 0.9], k=1)[0].id
    'b'
    >>> db.close()
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, Tuple,
                    Union)

import numpy as np

from . import validate
from .errors import CollectionNotFoundError, IdExistsError, IdNotFoundError
from .index.flat import FlatIndex
from .results import Hit, Record, Results
from .storage import keys, records
from .storage.catalog import CollectionInfo
from .storage.segments import SegmentStore
from .types import DEFAULT_INCLUDE, Id, Metadata

if TYPE_CHECKING:  # pragma: no cover
    from .database import Database


@dataclass
class _Batch:
    """A validated write batch: ids, their LMDB keys, vectors and encoded records."""

    ids: list
    keys: List[bytes]
    vectors: Optional[np.ndarray]
    metadatas: List[Optional[dict]]
    documents: List[Optional[str]]

    @property
    def encoded(self) -> List[bytes]:
        """The records of a full (add/upsert) batch, encoded once."""
        if self._encoded is None:
            self._encoded = [records.encode(*item)
                             for item in zip(self.ids, self.metadatas, self.documents)]
        return self._encoded

    _encoded: Optional[List[bytes]] = None


class Collection:
    """A named set of vectors with ids, metadata and documents. Get one from a ``Database``."""

    def __init__(self, db: "Database", info: CollectionInfo, directory: str) -> None:
        self._db = db
        self._info = info
        self._prefix = info.prefix
        self._store = SegmentStore(directory, info.dim, bytes.fromhex(info.uuid),
                                   writable=not db.readonly)
        self._index = FlatIndex("l2" if info.metric == "l2" else "ip")
        self._lock = threading.Lock()  # guards the in-memory state below
        self._watermark = 0
        self._tomb_seq = 0
        self._deny = np.zeros(1, dtype=np.uint64)
        self._dropped = False
        self._load_state()

    # -- properties --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def dim(self) -> int:
        return self._info.dim

    @property
    def metric(self) -> str:
        return self._info.metric

    @property
    def index(self) -> Any:
        from .config import index_from_dict
        return index_from_dict(self._info.index)

    def __repr__(self) -> str:
        return (f"Collection(name={self.name!r}, dim={self.dim}, metric={self.metric!r}, "
                f"count={self._watermark - self._tomb_seq})")

    # -- in-memory state ---------------------------------------------------------------------

    def _load_state(self) -> None:
        """Reads W, T and the tombstone log from LMDB (at open, and for read-only handles)."""
        env = self._db._env
        with env.read() as txn:
            raw = txn.get(self._prefix, db=env.dbs["state"])
            if raw is None:
                self._dropped = True
                raise CollectionNotFoundError(f"collection {self.name!r} was dropped")
            watermark, tomb_seq = keys.unpack_state(raw)
            if watermark == self._watermark and tomb_seq == self._tomb_seq:
                return
            new_tombs = []
            if tomb_seq > self._tomb_seq:
                with txn.cursor(db=env.dbs["tombs"]) as cur:
                    cur.set_range(keys.row_key(self._prefix, self._tomb_seq))
                    for key, value in cur:
                        if not key.startswith(self._prefix):
                            break
                        new_tombs.append(keys.unpack_u64(value))
        self._store.views(watermark)  # maps the new rows (checks the files hold them)
        self._apply(watermark, tomb_seq, new_tombs)

    def _apply(self, watermark: int, tomb_seq: int, tomb_rows: Sequence[int]) -> None:
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
            self._watermark = watermark
            self._tomb_seq = tomb_seq

    def _snapshot(self) -> Tuple[int, Optional[np.ndarray]]:
        """(W, tombstone bitset) as of now, refreshed from LMDB for read-only handles."""
        self._db._check_open()
        if self._dropped:
            raise CollectionNotFoundError(f"collection {self.name!r} was dropped")
        if self._db.readonly:
            self._load_state()
        with self._lock:  # no bitset at all while nothing is deleted: a faster scan
            return self._watermark, (self._deny if self._tomb_seq else None)

    # -- writes ------------------------------------------------------------------------------

    def _prepare(self, ids: Any, vectors: Any, metadatas: Any, documents: Any,
                 need_vectors: bool) -> _Batch:
        id_list = validate.ids(ids)
        n = len(id_list)
        vecs = None
        if vectors is not None or need_vectors:
            vecs = validate.vectors(vectors, n, self.dim, normalize=self.metric == "cosine")
        metas = validate.metadatas(metadatas, n)
        docs = validate.documents(documents, n)
        return _Batch(id_list, [keys.id_key(self._prefix, i) for i in id_list], vecs, metas, docs)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The database's write lock, after checking this collection still exists."""
        with self._db._writing():
            if self._dropped:
                raise CollectionNotFoundError(f"collection {self.name!r} was dropped")
            yield

    def _tombstone(self, txn: Any, old: bytes, seq: int, tombs: List[int]) -> int:
        """Deletes the record of row `old` (packed u64) and logs it as tombstone number seq;
        appends the row to tombs and returns the next sequence number."""
        dbs = self._db._env.dbs
        txn.delete(self._prefix + old, db=dbs["rows"])
        txn.put(keys.row_key(self._prefix, seq), old, db=dbs["tombs"])
        tombs.append(keys.unpack_u64(old))
        return seq + 1

    def _commit(self, batch: _Batch,
                record_for: Optional[Callable[[int, Optional[bytes]], bytes]]) -> int:
        """Runs the write protocol for one batch; returns how many rows were tombstoned.

        record_for(i, old_record) gives the record to store for batch item i, from the item's
        current record (None if the id is new), inside the transaction; it may raise to abort.
        record_for=None is add(): every id must be new and the records are in batch.encoded.
        """
        with self._writing():
            env, dbs, prefix = self._db._env, self._db._env.dbs, self._prefix
            start = self._watermark
            n_new = 0 if batch.vectors is None else len(batch.vectors)
            if n_new:
                self._store.append(start, batch.vectors)
                if self._db.durability == "full":
                    self._store.sync()

            def transaction(txn: Any) -> Tuple[int, List[int]]:
                seq, tombs = self._tomb_seq, []
                if record_for is None:
                    for i, key in enumerate(batch.keys):
                        if not txn.put(key, keys.pack_u64(start + i), db=dbs["ids"],
                                       overwrite=False):
                            raise IdExistsError(
                                f"ids[{i}]: id {batch.ids[i]!r} already exists in collection "
                                f"{self.name!r}; use upsert() to replace it")
                    with txn.cursor(db=dbs["rows"]) as cur:
                        cur.putmulti([(keys.row_key(prefix, start + i), record)
                                      for i, record in enumerate(batch.encoded)])
                for i, key in enumerate(batch.keys if record_for else ()):
                    old = txn.get(key, db=dbs["ids"])
                    old_key = None if old is None else prefix + old
                    record = record_for(i, txn.get(old_key, db=dbs["rows"]) if old_key else None)
                    if n_new:
                        if old is not None:
                            seq = self._tombstone(txn, old, seq, tombs)
                        new = keys.pack_u64(start + i)
                        txn.put(key, new, db=dbs["ids"])
                        txn.put(prefix + new, record, db=dbs["rows"])
                    else:
                        txn.put(old_key, record, db=dbs["rows"])
                txn.put(prefix, keys.pack_state(start + n_new, seq), db=dbs["state"])
                return seq, tombs

            seq, tombs = env.write(transaction, sync=self._db.durability == "full")
            self._apply(start + n_new, seq, tombs)
            return len(tombs)

    def add(self, ids: Sequence[Id], vectors: Any, metadatas: Optional[Sequence[Optional[Metadata]]] = None,
            documents: Optional[Sequence[Optional[str]]] = None) -> None:
        """Adds new items; raises ``IdExistsError`` (and writes nothing) if an id exists.

        >>> col.add(ids=[1, 2], vectors=np.random.rand(2, col.dim))  # doctest: +SKIP
        """
        batch = self._prepare(ids, vectors, metadatas, documents, need_vectors=True)
        self._commit(batch, None)

    def upsert(self, ids: Sequence[Id], vectors: Any, metadatas: Optional[Sequence[Optional[Metadata]]] = None,
               documents: Optional[Sequence[Optional[str]]] = None) -> None:
        """Adds new items and replaces existing ones (vector, metadata and document)."""
        batch = self._prepare(ids, vectors, metadatas, documents, need_vectors=True)
        self._commit(batch, lambda i, old: batch.encoded[i])

    def update(self, ids: Sequence[Id], *, vectors: Any = None,
               metadatas: Optional[Sequence[Optional[Metadata]]] = None,
               documents: Optional[Sequence[Optional[str]]] = None) -> None:
        """Changes existing items; every id must exist (else ``IdNotFoundError``).

        Metadata is merged key by key into the stored metadata; a document replaces the stored
        one; ``None`` entries leave that item's field unchanged. The vector is re-indexed only
        when ``vectors`` is given.
        """
        batch = self._prepare(ids, vectors, metadatas, documents, need_vectors=False)

        def record_for(i: int, old: Optional[bytes]) -> bytes:
            if old is None:
                raise IdNotFoundError(
                    f"ids[{i}]: id {batch.ids[i]!r} is not in collection {self.name!r}"
                )
            _, meta, doc = records.decode(old)
            if batch.metadatas[i] is not None:
                meta = {**(meta or {}), **batch.metadatas[i]}
            if batch.documents[i] is not None:
                doc = batch.documents[i]
            return records.encode(batch.ids[i], meta, doc)

        self._commit(batch, record_for)

    def delete(self, ids: Sequence[Id]) -> int:
        """Deletes the given ids (unknown ids are ignored); returns how many were deleted."""
        id_list = validate.ids(ids, allow_empty=True)
        if not id_list:
            return 0
        id_keys = [keys.id_key(self._prefix, i) for i in id_list]
        with self._writing():
            env, dbs = self._db._env, self._db._env.dbs

            def transaction(txn: Any) -> Tuple[int, List[int]]:
                seq, tombs = self._tomb_seq, []
                for key in id_keys:
                    old = txn.pop(key, db=dbs["ids"])
                    if old is not None:
                        seq = self._tombstone(txn, old, seq, tombs)
                if tombs:
                    txn.put(self._prefix, keys.pack_state(self._watermark, seq), db=dbs["state"])
                return seq, tombs

            seq, tombs = env.write(transaction, sync=self._db.durability == "full")
            self._apply(self._watermark, seq, tombs)
            return len(tombs)

    def flush(self) -> None:
        """Makes everything written so far durable (segments and LMDB fsynced)."""
        self._db._check_open()
        if not self._db.readonly:
            self._store.sync()
            self._db._env.sync()

    # -- reads -------------------------------------------------------------------------------

    def count(self) -> int:
        """Number of live items."""
        watermark, _ = self._snapshot()
        with self._lock:
            return self._watermark - self._tomb_seq

    def __len__(self) -> int:
        return self.count()

    def get(self, ids: Optional[Sequence[Id]] = None, *, limit: Optional[int] = None,
            offset: int = 0, include: Sequence[str] = DEFAULT_INCLUDE) -> List[Record]:
        """Records of the given ids (in that order, unknown ids skipped), or of all items in
        insertion order (with ``limit``/``offset``) when ``ids`` is None.

        >>> col.get(ids=["a"])[0].document  # doctest: +SKIP
        'origin'
        """
        fields = validate.include(include)
        limit = validate.non_negative_int(limit, "limit", allow_none=True)
        offset = validate.non_negative_int(offset, "offset")
        id_list = None if ids is None else validate.ids(ids, allow_empty=True)
        self._snapshot()
        env = self._db._env
        found: List[Tuple[int, bytes]] = []
        with env.read() as txn:
            if id_list is not None:
                for ext_id in id_list:
                    row = txn.get(keys.id_key(self._prefix, ext_id), db=env.dbs["ids"])
                    value = None if row is None else txn.get(self._prefix + row, db=env.dbs["rows"])
                    if value is not None:
                        found.append((keys.unpack_u64(row), value))
            elif limit != 0:
                with txn.cursor(db=env.dbs["rows"]) as cur:
                    if cur.set_range(self._prefix):
                        skipped = 0
                        for key, value in cur:
                            if not key.startswith(self._prefix):
                                break
                            if skipped < offset:
                                skipped += 1
                                continue
                            found.append((keys.key_row(key), value))
                            if limit is not None and len(found) >= limit:
                                break
        vectors = self._vectors([row for row, _ in found]) if "vector" in fields else None
        out = []
        for j, (_, value) in enumerate(found):
            ext_id, meta, doc = records.decode(value)
            out.append(Record(id=ext_id,
                              metadata=(meta or {}) if "metadata" in fields else None,
                              document=doc if "document" in fields else None,
                              vector=None if vectors is None else vectors[j]))
        return out

    def _vectors(self, rows: List[int]) -> np.ndarray:
        if not rows:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._store.read(rows, max(rows) + 1)

    def query(self, query: Any, k: int = 10, *, include: Sequence[str] = DEFAULT_INCLUDE,
              n_threads: int = 0) -> Union[Results, List[Results]]:
        """The k nearest items to a query vector ([dim] -> Results) or to each of a batch of
        queries ([nq, dim] -> list of Results), best first. Fewer than k only when the
        collection holds fewer items.

        >>> hits = col.query(np.random.rand(col.dim), k=5)  # doctest: +SKIP
        >>> hits[0].id, hits[0].distance, hits.ids  # doctest: +SKIP
        """
        fields = validate.include(include)
        k = validate.k(k)
        n_threads = validate.non_negative_int(n_threads, "n_threads")
        queries, single = validate.queries(query, self.dim, normalize=self.metric == "cosine")
        watermark, deny = self._snapshot()
        if watermark == 0:
            empty = Results([])
            return empty if single else [Results([]) for _ in range(len(queries))]
        views = self._store.views(watermark)
        rows, dists = self._index.search(views, self._store.shift, watermark, queries,
                                         min(k, watermark), deny=deny, n_threads=n_threads)
        results = self._hits(rows, dists, fields)
        return results[0] if single else results

    def _hits(self, rows: np.ndarray, dists: np.ndarray, fields: Tuple[str, ...]) -> List[Results]:
        """Turns C result rows into Results, reading records in one LMDB snapshot."""
        env = self._db._env
        want_vectors = "vector" in fields
        found: List[List[Tuple[int, float, Any, Any, Any]]] = []
        with env.read() as txn:
            for qrows, qdists in zip(rows.tolist(), dists.tolist()):
                hits = []
                for row, dist in zip(qrows, qdists):
                    if row < 0:
                        break
                    value = txn.get(keys.row_key(self._prefix, row), db=env.dbs["rows"])
                    if value is None:  # deleted by a concurrent writer since the search
                        continue
                    hits.append((row, dist) + records.decode(value))
                found.append(hits)
        out = []
        for hits in found:
            vecs = self._vectors([h[0] for h in hits]) if want_vectors else None
            out.append(Results([
                Hit(id=ext_id, distance=self._distance(d), score=-d,
                    metadata=(meta or {}) if "metadata" in fields else None,
                    document=doc if "document" in fields else None,
                    vector=None if vecs is None else vecs[j])
                for j, (_, d, ext_id, meta, doc) in enumerate(hits)
            ]))
        return out

    def _distance(self, kernel_distance: float) -> float:
        """Public distance from the kernel's: cosine runs as -dot on unit vectors.

        The score is always -kernel distance: -squared L2, the dot, or the cosine similarity.
        """
        return 1.0 + kernel_distance if self.metric == "cosine" else kernel_distance

    # -- lifecycle (called by Database) ------------------------------------------------------

    def _close(self, dropped: bool = False) -> None:
        self._dropped = self._dropped or dropped
        self._store.close()
