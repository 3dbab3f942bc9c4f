"""Collection: the public face of one named set of vectors with ids, metadata and documents.

A collection's state is split the way DESIGN.md §3 says:
  - LMDB (source of truth): id -> row, row -> record (id, metadata, document), the tombstone
    log (sequence -> row) and the state (watermark W, tombstone count T, generation G);
  - segment files: the float32 rows [0, W) (rows past W are leftovers of an interrupted
    write and are ignored), and the graph checkpoint, in the folder of the current row
    generation (rowset.py; vacuum() renumbers rows into a new generation);
  - memory: a RowSet with W, T, the tombstone bitset and the indexes, derived at open.

Invariants:
 1. Every row in [0, W) is either live (exactly one id maps to it) or tombstoned (it appears
    once in the tombstone log). Hence count() == W - T.
 2. A write follows the protocol: validate everything; append vectors at [W, W + n) and flush
    them (durability="full"); one LMDB transaction; only then update memory. A failure at any
    step before the commit leaves the collection as it was.
 3. Under the cosine metric rows and queries are stored/searched unit-normalized, and the C
    kernels run inner product on them.
 4. Row numbers are only meaningful within a generation: a reader that finds rows in LMDB
    checks, in the same transaction, that the generation is the one its RowSet belongs to,
    and starts over otherwise.

    >>> import tempfile, numpy as np, vecdb
    >>> db = vecdb.open(tempfile.mkdtemp())
    >>> col = db.create_collection("docs", dim=2, metric="l2")
    >>> col.add(ids=["a", "b"], vectors=[[0, 0], [1, 1]], documents=["origin", "one"])
    >>> col.query([0.9, 0.9], k=1)[0].id
    'b'
    >>> db.close()
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple, Union)

import numpy as np

from . import validate
from .errors import CollectionNotFoundError, CorruptionError, IdExistsError, IdNotFoundError
from .config import HNSW, index_from_dict
from .query import planner
from .rowset import RowSet, remove_generation_dirs
from .vacuum import vacuum
from .results import Record, Results
from .storage import keys, records
from .storage.catalog import CollectionInfo
from .types import DEFAULT_INCLUDE, Id, Metadata

AUTO_VACUUM_MIN_ROWS = 1024  # fewer tombstones than this never trigger auto_vacuum

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
        self._base_dir = directory
        self._config = index_from_dict(info.index)
        self._rows: Optional[RowSet] = None  # replaced whole on a generation switch
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
        """The index config the collection was created with (``vecdb.HNSW(...)`` or ``Flat()``)."""
        return self._config

    def __repr__(self) -> str:
        live = self._rows.live if self._rows is not None else 0
        return (f"Collection(name={self.name!r}, dim={self.dim}, metric={self.metric!r}, "
                f"count={live})")

    # -- in-memory state ---------------------------------------------------------------------

    def _load_state(self) -> None:
        """Takes in W, T, G and new tombstones from LMDB (at open, and for read-only handles
        before each operation); a new generation gets a new RowSet.

        A vacuum in another process may delete the old generation's files between the read
        of the state and the opening of a new segment file: then the generation has moved
        on, and the state is read again.
        """
        for attempt in range(3):
            try:
                return self._take_state()
            except CorruptionError:
                if attempt == 2 or not self._generation_moved():
                    raise

    def _generation_moved(self) -> bool:
        rows = self._rows
        with self._db._env.read() as txn:
            return rows is not None and not self._check_generation(txn, rows)

    def _take_state(self) -> None:
        env = self._db._env
        rows = self._rows
        with env.read() as txn:
            raw = txn.get(self._prefix, db=env.dbs["state"])
            if raw is None:
                self._dropped = True
                raise CollectionNotFoundError(f"collection {self.name!r} was dropped")
            watermark, tomb_seq, gen = keys.unpack_state(raw)
            fresh = rows is None or rows.gen != gen
            if not fresh and watermark == rows.watermark and tomb_seq == rows.tomb_seq:
                return
            seen = 0 if fresh else rows.tomb_seq
            new_tombs = []
            if tomb_seq > seen:
                with txn.cursor(db=env.dbs["tombs"]) as cur:
                    cur.set_range(keys.row_key(self._prefix, seen))
                    for key, value in cur:
                        if not key.startswith(self._prefix):
                            break
                        new_tombs.append(keys.unpack_u64(value))
        if fresh:
            if rows is None and not self._db.readonly:
                remove_generation_dirs(self._base_dir, keep=gen)  # an interrupted vacuum's
            rows = RowSet(self._base_dir, self._info, self._config, gen,
                          writable=not self._db.readonly, fsync=self._db.durability != "off")
            rows.apply(watermark, tomb_seq, new_tombs)
            rows.open_graph()
            self._rows = rows
        else:
            rows.apply(watermark, tomb_seq, new_tombs)

    def _current(self) -> RowSet:
        """The RowSet as of now, refreshed from LMDB for read-only handles."""
        self._db._check_open()
        if self._dropped:
            raise CollectionNotFoundError(f"collection {self.name!r} was dropped")
        if self._db.readonly:
            self._load_state()
        return self._rows

    def _check_generation(self, txn: Any, rows: RowSet) -> bool:
        """True if rows is still the current generation, as seen by txn (invariant 4)."""
        raw = txn.get(self._prefix, db=self._db._env.dbs["state"])
        return raw is not None and keys.unpack_state(raw)[2] == rows.gen

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
            env, dbs, prefix, rows = self._db._env, self._db._env.dbs, self._prefix, self._rows
            start = rows.watermark
            n_new = 0 if batch.vectors is None else len(batch.vectors)
            if n_new:
                rows.append(start, batch.vectors, batch.ids, sync=self._db.durability == "full")

            def transaction(txn: Any) -> Tuple[int, List[int]]:
                seq, tombs = rows.tomb_seq, []
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
                txn.put(prefix, keys.pack_state(start + n_new, seq, rows.gen), db=dbs["state"])
                return seq, tombs

            seq, tombs = env.write(transaction, sync=self._db.durability == "full")
            rows.apply(start + n_new, seq, tombs)
            if n_new:
                rows.extend_graph()
            if tombs:
                self._maybe_vacuum()
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
            env, dbs, rows = self._db._env, self._db._env.dbs, self._rows

            def transaction(txn: Any) -> Tuple[int, List[int]]:
                seq, tombs = rows.tomb_seq, []
                for key in id_keys:
                    old = txn.pop(key, db=dbs["ids"])
                    if old is not None:
                        seq = self._tombstone(txn, old, seq, tombs)
                if tombs:
                    txn.put(self._prefix, keys.pack_state(rows.watermark, seq, rows.gen),
                            db=dbs["state"])
                return seq, tombs

            seq, tombs = env.write(transaction, sync=self._db.durability == "full")
            rows.apply(rows.watermark, seq, tombs)
            if tombs:
                self._maybe_vacuum()
            return len(tombs)

    def flush(self) -> None:
        """Makes everything written so far durable (segments and LMDB fsynced) and writes the
        graph checkpoint if the graph changed."""
        rows = self._current()
        if not self._db.readonly:
            rows.sync()
            self._db._env.sync()
            if rows.graph is not None:
                rows.graph.checkpoint()

    # -- reads -------------------------------------------------------------------------------

    def count(self) -> int:
        """Number of live items."""
        return self._current().live

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
        env = self._db._env
        while True:  # once, unless a vacuum switches generations meanwhile (invariant 4)
            rows = self._current()
            found: List[Tuple[int, bytes]] = []
            with env.read() as txn:
                if not self._check_generation(txn, rows):
                    continue
                if id_list is not None:
                    for ext_id in id_list:
                        row = txn.get(keys.id_key(self._prefix, ext_id), db=env.dbs["ids"])
                        value = None if row is None else txn.get(self._prefix + row,
                                                                 db=env.dbs["rows"])
                        if value is not None:
                            found.append((keys.unpack_u64(row), value))
                elif limit != 0:
                    found = self._scan_records(txn, offset, limit)
            break
        vectors = _read_vectors(rows, [r for r, _ in found]) if "vector" in fields else None
        out = []
        for j, (_, value) in enumerate(found):
            ext_id, meta, doc = records.decode(value)
            out.append(Record(id=ext_id,
                              metadata=(meta or {}) if "metadata" in fields else None,
                              document=doc if "document" in fields else None,
                              vector=None if vectors is None else vectors[j]))
        return out

    def _scan_records(self, txn: Any, offset: int, limit: Optional[int]) -> List[Tuple[int, bytes]]:
        """(row, record) of live rows in row order, skipping offset, at most limit."""
        found: List[Tuple[int, bytes]] = []
        with txn.cursor(db=self._db._env.dbs["rows"]) as cur:
            if not cur.set_range(self._prefix):
                return found
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
        return found

    def query(self, query: Any, k: int = 10, *, include: Sequence[str] = DEFAULT_INCLUDE,
              ef: Optional[int] = None, n_threads: int = 0) -> Union[Results, List[Results]]:
        """The k nearest items to a query vector ([dim] -> Results) or to each of a batch of
        queries ([nq, dim] -> list of Results), best first. Fewer than k only when the
        collection holds fewer items.

        >>> hits = col.query(np.random.rand(col.dim), k=5)  # doctest: +SKIP
        >>> hits[0].id, hits[0].distance, hits.ids  # doctest: +SKIP
        """
        fields = validate.include(include)
        k = validate.k(k)
        n_threads = validate.non_negative_int(n_threads, "n_threads")
        default_ef = self._config.ef_search if isinstance(self._config, HNSW) else 0
        ef = default_ef if ef is None else validate.positive_int(ef, "ef")
        queries, single = validate.queries(query, self.dim, normalize=self.metric == "cosine")
        while True:  # once, unless a vacuum switches generations meanwhile (invariant 4)
            rows = self._current()
            watermark, live, deny = rows.snapshot()
            if live <= 0:
                return Results([]) if single else [Results([]) for _ in range(len(queries))]
            found, dists, _ = planner.search(rows.flat, rows.graph, rows.store.views,
                                             rows.store.shift, watermark, live, queries, k, ef,
                                             deny, n_threads)
            results = self._hits(rows, found, dists, fields)
            if results is not None:
                return results[0] if single else results

    def _hits(self, rows: RowSet, found: np.ndarray, dists: np.ndarray,
              fields: Tuple[str, ...]) -> Optional[List[Results]]:
        """Turns C result rows into Results, reading records in one LMDB snapshot; None if the
        generation changed since the search (the caller searches again)."""
        env = self._db._env
        rows_db, prefix = env.dbs["rows"], self._prefix
        want_meta, want_doc = "metadata" in fields, "document" in fields
        want_body = want_meta or want_doc
        # public distance: cosine runs as -dot on unit vectors; the score is always -kernel
        offset = 1.0 if self.metric == "cosine" else 0.0
        if not fields:  # ids only: the id column suffices when every id is an int
            results = self._hits_from_id_column(rows, found, dists, offset)
            if results is not None:
                return results
        public = dists + offset if offset else dists
        out: List[Results] = []
        with env.read() as txn:
            if not self._check_generation(txn, rows):
                return None
            for qrows, qpublic in zip(found.tolist(), public.tolist()):
                ids, dist, metas, docs, hit_rows = [], [], [], [], []
                for row, pub in zip(qrows, qpublic):
                    if row < 0:
                        break
                    value = txn.get(prefix + keys.pack_u64(row), db=rows_db)
                    if value is None:  # deleted by a concurrent writer since the search
                        continue
                    if want_body:
                        ext_id, meta, doc = records.decode(value)
                        metas.append(meta or {})
                        docs.append(doc)
                    else:
                        ext_id = records.decode_id(value)
                    ids.append(ext_id)
                    dist.append(pub)
                    hit_rows.append(row)
                vectors = _read_vectors(rows, hit_rows) if "vector" in fields else None
                out.append(Results._from_columns(ids, dist, offset,
                                                 metas if want_meta else None,
                                                 docs if want_doc else None, vectors))
        return out

    @staticmethod
    def _hits_from_id_column(rows: RowSet, found: np.ndarray, dists: np.ndarray,
                             offset: float) -> Optional[List[Results]]:
        """Results with ids read from the id column (no LMDB), or None if a hit has a str id.
        Consistent without a transaction: the column belongs to rows' generation."""
        per_query = []
        for qrows, qdists in zip(found.tolist(), dists.tolist()):
            n = len(qrows) if not qrows or qrows[-1] >= 0 else qrows.index(-1)
            int_ids = rows.int_ids(qrows[:n]) if n else []
            if int_ids is None:
                return None
            per_query.append((int_ids, [d + offset for d in qdists[:n]] if offset else qdists[:n]))
        return [Results._from_columns(i, d, offset, None, None) for i, d in per_query]

    def _maybe_vacuum(self) -> None:
        """Runs vacuum() when tombstones pass the database's auto_vacuum share."""
        share, rows = self._db.auto_vacuum, self._rows
        tombstones = rows.watermark - rows.live
        if share is not None and tombstones >= AUTO_VACUUM_MIN_ROWS and \
                tombstones >= share * rows.watermark:
            vacuum(self)

    def vacuum(self) -> Dict[str, Any]:
        """Rewrites the collection without its deleted and replaced rows: gives their space
        back and rebuilds the graph without them. Returns what it did.

        >>> col.vacuum()["removed"]  # doctest: +SKIP
        120
        """
        return vacuum(self)

    def stats(self) -> Dict[str, Any]:
        """Rows, live items, tombstones, index parameters and the memory of the graph and
        the vectors.

        >>> col.stats()["live"]  # doctest: +SKIP
        2
        """
        rows = self._current()
        return {"name": self.name, "dim": self.dim, "metric": self.metric, **rows.stats()}

    def _close(self, dropped: bool = False, sync: bool = False) -> None:
        self._dropped = self._dropped or dropped
        if self._rows is not None:
            keep = not self._dropped and not self._db.readonly
            self._rows.close(checkpoint=keep, sync=keep and sync)


def _read_vectors(rows: RowSet, row_numbers: List[int]) -> np.ndarray:
    if not row_numbers:
        return np.empty((0, rows.dim), dtype=np.float32)
    return rows.store.read(row_numbers, max(row_numbers) + 1)
