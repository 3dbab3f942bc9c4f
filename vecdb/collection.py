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

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple, Union)

import numpy as np

from . import validate
from .errors import (CollectionNotFoundError, CorruptionError, IdExistsError, IdNotFoundError,
                     InvalidArgumentError)
from .config import (HNSW, IVFPQ, index_from_dict, quantization_from_dict,
                     text_index_from_dict)
from .index.filter_columns import GenerationMoved
from .query import filters, planner
from .query.selection import Selection, select
from .rowset import RowSet, remove_generation_dirs
from .vacuum import vacuum
from . import reads, textsearch
from .results import Record, Records, Results
from .storage import keys, records
from .storage.catalog import CollectionInfo
from .textindex import TextWriter
from .types import DEFAULT_INCLUDE, Id, Metadata, Where, WhereDocument

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
        self._quantization = quantization_from_dict(info.index)
        self._text_index = text_index_from_dict(info.index)
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
        """The index config the collection was created with (``vecdb.HNSW(...)``,
        ``vecdb.IVFPQ(...)`` or ``vecdb.Flat()``)."""
        return self._config

    @property
    def text_index(self) -> Any:
        """The collection's text index (``vecdb.BM25(...)``), or None when it keeps no BM25
        postings (``text_index=False`` at creation, or created before text indexing)."""
        return self._text_index

    @property
    def quantization(self) -> Any:
        """The quantization the collection was created with (``vecdb.SQ8()``,
        ``vecdb.PQ(m=...)``) or None."""
        return self._quantization

    def __repr__(self) -> str:
        state = self._repr_state()
        count = f"count={state}" if isinstance(state, int) else state
        quant = "" if self._quantization is None else f", quantization={self._quantization!r}"
        text = repr(self._text_index) if self._text_index is not None else "False"
        return (f"Collection(name={self.name!r}, dim={self.dim}, metric={self.metric!r}, "
                f"{count}, index={self._config!r}{quant}, text_index={text})")

    def _repr_state(self) -> Union[int, str]:
        """The live count, or "closed" / "dropped" (a repr never raises)."""
        if self._db.closed:
            return "closed"
        try:
            return self._current().live
        except CollectionNotFoundError:
            return "dropped"

    def _repr_html_(self) -> str:
        """A table of the settings and counts, and the first 5 items (``peek(5)``)."""
        from . import display
        state = self._repr_state()
        rows = self._rows
        fields = [("count", f"{state:,}" if isinstance(state, int) else state),
                  ("dim", str(self.dim)), ("metric", self.metric),
                  ("index", repr(self._config)),
                  ("quantization", repr(self._quantization) if self._quantization else "none"),
                  ("text index", repr(self._text_index) if self._text_index else "none")]
        if isinstance(state, int) and rows is not None and rows.watermark > state:
            fields.append(("deleted rows", f"{rows.watermark - state:,} (vacuum() frees them)"))
        out = display.html_fields(fields, title=f"Collection {self.name!r}")
        if isinstance(state, int) and state:
            out += self.peek(5)._repr_html_()
        return out

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
            watermark, tomb_seq, gen, edit_seq = keys.unpack_state(raw)
            fresh = rows is None or rows.gen != gen
            if not fresh and watermark == rows.watermark and tomb_seq == rows.tomb_seq and \
                    edit_seq == rows.edit_seq:
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
                          writable=not self._db.readonly, fsync=self._db.durability != "off",
                          quantization=self._quantization)
            rows.apply(watermark, tomb_seq, new_tombs, edit_seq)
            rows.open_index()
            self._rows = rows
        else:
            rows.apply(watermark, tomb_seq, new_tombs, edit_seq)

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
        return reads.generation_is(txn, self._db._env, self._prefix, rows.gen)

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

    def _tombstone(self, txn: Any, old: bytes, seq: int, tombs: List[int],
                   text: TextWriter) -> int:
        """Deletes the record of row `old` (packed u64) and its postings, and logs it as
        tombstone number seq; appends the row to tombs and returns the next sequence
        number."""
        dbs = self._db._env.dbs
        if text.on:
            text.remove(keys.unpack_u64(old), txn.get(self._prefix + old, db=dbs["rows"]))
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

            def transaction(txn: Any) -> Tuple[int, List[int], int]:
                seq, tombs, edits = rows.tomb_seq, [], rows.edit_seq
                text = TextWriter(txn, dbs, prefix, self._text_index)
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
                    for i, document in enumerate(batch.documents):
                        text.add(start + i, document)
                for i, key in enumerate(batch.keys if record_for else ()):
                    old = txn.get(key, db=dbs["ids"])
                    old_key = None if old is None else prefix + old
                    old_record = txn.get(old_key, db=dbs["rows"]) if old_key else None
                    record = record_for(i, old_record)
                    if n_new:
                        if old is not None:
                            seq = self._tombstone(txn, old, seq, tombs, text)
                        new = keys.pack_u64(start + i)
                        txn.put(key, new, db=dbs["ids"])
                        txn.put(prefix + new, record, db=dbs["rows"])
                        text.add_record(start + i, record)
                    else:  # in place: logged for the filter columns
                        txn.put(old_key, record, db=dbs["rows"])
                        txn.put(keys.row_key(prefix, edits), old, db=dbs["edits"])
                        edits += 1
                        text.replace(keys.unpack_u64(old), old_record, record)
                text.finish()
                txn.put(prefix, keys.pack_state(start + n_new, seq, rows.gen, edits),
                        db=dbs["state"])
                return seq, tombs, edits

            seq, tombs, edits = env.write(transaction, sync=self._db.durability == "full")
            rows.apply(start + n_new, seq, tombs, edits)
            if n_new:
                rows.extend_index()
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

    def delete(self, ids: Optional[Sequence[Id]] = None, *, where: Optional[Where] = None,
               where_document: Optional[WhereDocument] = None) -> int:
        """Deletes the given ids and/or the items matching the filters (both given: the ids
        that match); unknown ids are ignored. Returns how many were deleted.

        >>> col.delete(where={"year": {"$lt": 2000}})  # doctest: +SKIP
        3
        """
        node = filters.parse(where, where_document)
        id_list = None if ids is None else validate.ids(ids, allow_empty=True)
        if id_list is None and node == filters.ALL:
            raise InvalidArgumentError(
                "delete: give ids, or a non-empty where / where_document (to delete every "
                "item, use db.drop_collection)")
        if id_list is not None and not id_list:
            return 0
        id_keys = None if id_list is None else [keys.id_key(self._prefix, i) for i in id_list]
        with self._writing():
            env, dbs, rows, prefix = self._db._env, self._db._env.dbs, self._rows, self._prefix
            selection = None if node == filters.ALL else select(env, prefix, rows, node)

            def transaction(txn: Any) -> Tuple[int, List[int]]:
                seq, tombs = rows.tomb_seq, []
                text = TextWriter(txn, dbs, prefix, self._text_index)
                if id_keys is not None:
                    for key in id_keys:
                        old = txn.get(key, db=dbs["ids"])
                        if old is None or (selection is not None and
                                           not selection.contains(keys.unpack_u64(old))):
                            continue
                        txn.delete(key, db=dbs["ids"])
                        seq = self._tombstone(txn, old, seq, tombs, text)
                else:
                    for row in selection.rows().tolist():
                        old = keys.pack_u64(row)
                        record = txn.get(prefix + old, db=dbs["rows"])
                        if record is not None:
                            txn.delete(keys.id_key(prefix, records.decode_id(record)),
                                       db=dbs["ids"])
                            seq = self._tombstone(txn, old, seq, tombs, text)
                text.finish()
                if tombs:
                    txn.put(prefix, keys.pack_state(rows.watermark, seq, rows.gen,
                                                    rows.edit_seq), db=dbs["state"])
                return seq, tombs

            seq, tombs = env.write(transaction, sync=self._db.durability == "full")
            rows.apply(rows.watermark, seq, tombs, rows.edit_seq)
            if tombs:
                self._maybe_vacuum()
            return len(tombs)

    def flush(self) -> None:
        """Makes everything written so far durable (segments and LMDB fsynced) and writes the
        index (graph, codes, lists) and filter-column checkpoints if they changed."""
        rows = self._current()
        if not self._db.readonly:
            rows.sync()
            self._db._env.sync()
            rows.filters.checkpoint()
            if rows.index is not None:
                rows.index.checkpoint()

    # -- reads -------------------------------------------------------------------------------

    def count(self, where: Optional[Where] = None,
              where_document: Optional[WhereDocument] = None) -> int:
        """Number of live items, or of those matching the filters.

        >>> col.count(where={"year": 2024})  # doctest: +SKIP
        1
        """
        node = filters.parse(where, where_document)
        if node == filters.ALL:
            return self._current().live
        return self._select(node)[1].matches

    def __len__(self) -> int:
        return self.count()

    def _select(self, node: filters.Node) -> Tuple[RowSet, Selection]:
        """(the current RowSet, the rows of it that node allows)."""
        while True:  # once, unless a vacuum switches generations meanwhile (invariant 4)
            rows = self._current()
            try:
                return rows, select(self._db._env, self._prefix, rows, node)
            except GenerationMoved:
                continue

    def get(self, ids: Optional[Sequence[Id]] = None, *, where: Optional[Where] = None,
            where_document: Optional[WhereDocument] = None, limit: Optional[int] = None,
            offset: int = 0, include: Sequence[str] = DEFAULT_INCLUDE) -> Records:
        """Records of the given ids (in that order, unknown ids skipped), or of all items in
        insertion order (with ``limit``/``offset``) when ``ids`` is None; the filters keep
        only the items that match them (``limit``/``offset`` count matching items). The
        ``Records`` list prints as a table and has ``to_pandas()`` / ``to_arrow()``.

        >>> col.get(ids=["a"])[0].document  # doctest: +SKIP
        'origin'
        >>> [r.id for r in col.get(where={"year": {"$gte": 2020}}, limit=10)]  # doctest: +SKIP
        ['a']
        """
        node = filters.parse(where, where_document)
        fields = validate.include(include)
        limit = validate.non_negative_int(limit, "limit", allow_none=True)
        offset = validate.non_negative_int(offset, "offset")
        id_list = None if ids is None else validate.ids(ids, allow_empty=True)
        env = self._db._env
        while True:  # once, unless a vacuum switches generations meanwhile (invariant 4)
            rows, selection = (self._current(), None) if node == filters.ALL else \
                self._select(node)
            found: List[Tuple[int, bytes]] = []
            with env.read() as txn:
                if not self._check_generation(txn, rows):
                    continue
                if id_list is not None:
                    for ext_id in id_list:
                        row = txn.get(keys.id_key(self._prefix, ext_id), db=env.dbs["ids"])
                        if row is None or (selection is not None and
                                           not selection.contains(keys.unpack_u64(row))):
                            continue
                        value = txn.get(self._prefix + row, db=env.dbs["rows"])
                        if value is not None:
                            found.append((keys.unpack_u64(row), value))
                elif limit == 0:
                    pass
                elif selection is None:
                    found = reads.scan_records(txn, env.dbs["rows"], self._prefix, offset, limit)
                else:
                    wanted = selection.rows()[offset:None if limit is None else offset + limit]
                    for row in wanted.tolist():
                        value = txn.get(keys.row_key(self._prefix, row), db=env.dbs["rows"])
                        if value is not None:
                            found.append((row, value))
            break
        vectors = reads.read_vectors(rows, [r for r, _ in found]) if "vector" in fields else None
        out = []
        for j, (_, value) in enumerate(found):
            ext_id, meta, doc = records.decode(value)
            out.append(Record(id=ext_id,
                              metadata=(meta or {}) if "metadata" in fields else None,
                              document=doc if "document" in fields else None,
                              vector=None if vectors is None else vectors[j]))
        return Records._trusted(out)

    def peek(self, n: int = 5, *, include: Sequence[str] = DEFAULT_INCLUDE) -> Records:
        """The first n items in insertion order (fewer if the collection holds fewer), as
        ``Records``: a list of ``Record`` that prints as a table, renders as HTML in a
        notebook and has ``to_pandas()`` / ``to_arrow()`` / ``to_list()``. ``include`` as in
        ``get`` (add "vector" for the vectors). Reads n records, never the whole collection.

        >>> col.peek(3).to_pandas()  # doctest: +SKIP
        """
        n = validate.non_negative_int(n, "n")
        return self.get(limit=n, include=include)

    def query(self, query: Any = None, k: int = 10, *, text: Any = None, fusion: Any = None,
              where: Optional[Where] = None,
              where_document: Optional[WhereDocument] = None,
              include: Sequence[str] = DEFAULT_INCLUDE, ef: Optional[int] = None,
              nprobe: Optional[int] = None, rescore: Optional[int] = None,
              n_threads: int = 0, explain: bool = False) -> Union[Results, List[Results]]:
        """The k nearest items to a query vector ([dim] -> Results) or to each of a batch of
        queries ([nq, dim] -> list of Results), best first, among the items matching the
        filters (query/filters.py describes the where-language). Fewer than k only when
        fewer items match. ``explain=True`` puts the plan report in each ``Results.explain``.

        ``text="..."`` (or a list of texts) without a vector: the k best items by BM25 over
        their documents (query/keyword.py); a hit's ``score`` is its BM25 score and its
        ``distance`` minus that. Needs the collection's text index (``text_index=True``, the
        default). A vector and ``text=`` together: hybrid search, the vector and keyword
        rankings (of ``max(50, 2k)`` candidates each, both under the filters) fused by
        ``fusion=vecdb.RRF(k=60)`` (the default) or ``vecdb.Weighted(alpha=0.5)``; each hit's
        ``sides`` gives its rank and distance / score on each side, its ``score`` the fused
        score.

        Knobs (None: the collection's defaults): ``ef`` the graph's candidate list (HNSW);
        ``nprobe`` the lists an IVF-PQ query scans; ``rescore`` the multiple of k of
        candidates a quantized index (SQ8, PQ, IVF-PQ) rescores exactly. Larger is more
        accurate and slower.

        >>> hits = col.query(np.random.rand(col.dim), k=5)  # doctest: +SKIP
        >>> hits[0].id, hits[0].distance, hits.ids  # doctest: +SKIP
        >>> col.query(q, k=5, where={"year": {"$gte": 2020}}, explain=True).explain["plan"]
        'exact'
        """
        t0 = time.perf_counter()
        node = filters.parse(where, where_document)
        fields = validate.include(include)
        k = validate.k(k)
        if fusion is not None and (text is None or query is None):
            raise InvalidArgumentError("fusion: only a hybrid query (a vector and text=) "
                                       "fuses two rankings")
        if text is not None and query is None:
            return textsearch.keyword_query(self, text, k, node, fields, explain, t0)
        if query is None:
            raise InvalidArgumentError("query: give a query vector, or text= for a keyword "
                                       "search")
        n_threads = validate.non_negative_int(n_threads, "n_threads")
        default_ef = self._config.ef_search if isinstance(self._config, HNSW) else 0
        ef = default_ef if ef is None else validate.positive_int(ef, "ef")
        nprobe, rescore = self._check_knobs(nprobe, rescore)
        queries, single = validate.queries(query, self.dim, normalize=self.metric == "cosine")
        if text is not None:
            return textsearch.hybrid_query(self, queries, single, text, k, node, fields,
                                           fusion, ef, nprobe, rescore, n_threads, explain, t0)
        while True:  # once, unless a vacuum switches generations meanwhile (invariant 4)
            rows, selection = (self._current(), None) if node == filters.ALL else \
                self._select(node)
            if selection is None:
                n_rows, eligible, deny = rows.snapshot()
                allow = None
            else:  # the selection's bitset already leaves out tombstoned rows
                n_rows, eligible, deny, allow = (selection.n_rows, selection.matches, None,
                                                 selection.bits)
            t1 = time.perf_counter()
            if eligible <= 0:
                results = [Results([]) for _ in range(len(queries))]
                plan = planner.Plan("exact", None, 0, reason="no item matches: nothing to scan")
            else:
                found, dists, plan = planner.search(
                    rows.flat, rows.index, rows.store.views, rows.store.shift, n_rows, eligible,
                    queries, k, ef, deny, n_threads, allow=allow, counting=explain,
                    nprobe=nprobe, rescore=rescore)
                results = reads.hits(self._db._env, self._prefix, self.metric, rows, found,
                                     dists, fields)
                if results is None:
                    continue
            if explain:
                report = reads.explain_report(plan, node, selection, rows.live, len(queries),
                                                t0, t1)
                for r in results:
                    r.explain = report
            return results[0] if single else results

    def _check_knobs(self, nprobe: Any, rescore: Any) -> Tuple[Optional[int], Optional[int]]:
        """nprobe and rescore checked against the index (None stays None: the default)."""
        if nprobe is not None:
            if not isinstance(self._config, IVFPQ):
                raise InvalidArgumentError(f"nprobe: only IVFPQ collections probe lists; "
                                           f"{self.name!r} uses {self._config!r}")
            nprobe = validate.positive_int(nprobe, "nprobe")
        if rescore is not None:
            if not isinstance(self._config, IVFPQ) and self._quantization is None:
                raise InvalidArgumentError(f"rescore: {self.name!r} is not quantized (create it "
                                           f"with quantization=vecdb.SQ8() or vecdb.PQ(m=...), "
                                           f"or index=vecdb.IVFPQ(...))")
            rescore = validate.positive_int(rescore, "rescore")
        return nprobe, rescore

    def optimize(self, *, force: bool = False) -> Dict[str, Any]:
        """Trains the quantizer (SQ8 / PQ) or the IVF-PQ lists now, if they are untrained
        (they train by themselves once the collection holds their ``train_size`` rows), or
        again if the rows added since training drifted far from what they were trained on
        (their mean quantization error grew 1.5x), or if ``force``. Returns what it did.

        >>> col.optimize()  # doctest: +SKIP
        {'trained': True, 'rows': 20000, 'sample': 20000, 'train_error': 0.012}
        """
        with self._writing():
            rows = self._rows
            if rows.index is None:
                return {"trained": False, "reason": "a Flat collection has nothing to train"}
            return rows.index.optimize(rows.store.views, rows.watermark, force=bool(force))

    def explain(self, query: Any, k: int = 10, *, where: Optional[Where] = None,
                where_document: Optional[WhereDocument] = None,
                ef: Optional[int] = None) -> Dict[str, Any]:
        """Runs the query and reports how it was answered: the plan and why, the number of
        matching items, nodes visited, distance computations and time.

        >>> col.explain(np.random.rand(col.dim), k=5, where={"year": 2024})  # doctest: +SKIP
        {'plan': 'exact', 'matches': 1, ...}
        """
        results = self.query(query, k, where=where, where_document=where_document,
                             include=(), ef=ef, explain=True)
        return (results[0] if isinstance(results, list) else results).explain

    def _maybe_vacuum(self) -> None:
        """Runs vacuum() when tombstones pass the database's auto_vacuum share."""
        share, rows = self._db.auto_vacuum, self._rows
        tombstones = rows.watermark - rows.live
        if share is not None and tombstones >= AUTO_VACUUM_MIN_ROWS and \
                tombstones >= share * rows.watermark:
            vacuum(self)

    def vacuum(self, *, progress: Any = False) -> Dict[str, Any]:
        """Rewrites the collection without its deleted and replaced rows: gives their space
        back and rebuilds the graph without them. Returns what it did. ``progress``: True
        for a progress bar, or a callable ``fn(done, total)``.

        >>> col.vacuum()["removed"]  # doctest: +SKIP
        120
        """
        from .io.progress import progress_bar
        with progress_bar(progress, None, f"vacuum {self.name}", "rows") as bar:
            return vacuum(self, on_total=bar.set_total, on_rows=bar.update)

    # -- import / export (vecdb/io/transfer.py) ---------------------------------------------

    def add_from(self, path: Any, *, format: Optional[str] = None, mode: str = "add",
                 ids: Optional[Sequence[Id]] = None, batch_size: int = 10_000,
                 progress: Any = False) -> int:
        """Adds (``mode="add"``) or upserts (``mode="upsert"``) the items of a file, streamed in
        batches of ``batch_size`` with constant memory; returns how many were written.

        Formats (by suffix, or ``format=``): ``.jsonl`` (one object per line: ``id``,
        ``vector``, ``metadata``, ``document``), ``.parquet`` (columns of the same names;
        needs pyarrow) and ``.npy`` (vectors only; ids from ``ids=`` or 0, 1, 2, ...).

        >>> col.add_from("docs.jsonl")  # doctest: +SKIP
        1000
        """
        from .io.transfer import add_from
        return add_from(self, path, format=format, mode=mode, ids=ids, batch_size=batch_size,
                        progress=progress)

    def export(self, path: Any, *, format: Optional[str] = None,
               where: Optional[Where] = None, where_document: Optional[WhereDocument] = None,
               batch_size: int = 10_000, progress: Any = False) -> int:
        """Writes the live items (or those matching the filters), in insertion order, to a
        JSONL, Parquet or .npy file (see ``add_from``) as one consistent snapshot, streamed
        with constant memory; returns how many were written. ``add_from`` reads it back
        exactly (vectors as stored: unit length under the cosine metric).

        >>> col.export("docs.parquet")  # doctest: +SKIP
        1000
        """
        from .io.transfer import export
        return export(self, path, format=format, where=where, where_document=where_document,
                      batch_size=batch_size, progress=progress)

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
