"""Result types: ``Hit`` (one query answer), ``Results`` (the hits of one query), ``Record``
(one stored item) and ``Records`` (a list of them, as ``Collection.peek`` returns).

Invariants: a ``Results`` never changes after it is built (a slice is a new one; a
``Records`` is a plain list subclass); their reprs show at most ``display.MAX_ROWS`` rows, so
printing a large result is cheap; ``to_list`` / ``to_pandas`` / ``to_arrow`` hold exactly the
values of the hits (the tables are built in display.py; pandas and pyarrow are imported only
when asked for).

    >>> r = Results([Hit(id="a", distance=0.1, score=0.9, metadata={"y": 1})])
    >>> r[0].id, r.ids.tolist()
    ('a', ['a'])
"""

from __future__ import annotations

from typing import (
    Any,
    Dict,
    Iterable,
    Iterator,
    List,
    NamedTuple,
    Optional,
    Sequence,
    SupportsIndex,
    Tuple,
    Union,
    overload,
)

import numpy as np

from . import display
from .errors import InvalidArgumentError
from .types import Id, Metadata


class Hit(NamedTuple):
    """One nearest neighbour: ``distance`` (smaller is closer) and ``score`` (larger is closer).

    An immutable named tuple (cheap to build: a query makes k of them). ``sides`` (hybrid
    queries only) tells where the hit came from: {"vector": {"rank": 1, "distance": ...},
    "text": {"rank": 4, "score": ...}} (1-based ranks; a side that did not find it is
    missing).
    """

    id: Id
    distance: float
    score: float
    metadata: Optional[Metadata] = None
    document: Optional[str] = None
    vector: Optional[np.ndarray] = None
    sides: Optional[Dict[str, Dict[str, float]]] = None


class Record(NamedTuple):
    """A stored item as returned by ``Collection.get``."""

    id: Id
    metadata: Optional[Metadata] = None
    document: Optional[str] = None
    vector: Optional[np.ndarray] = None


def _ids_array(ids: Sequence[Id]) -> np.ndarray:
    if ids and all(isinstance(i, int) for i in ids):
        return np.array(ids, dtype=np.int64)
    out = np.empty(len(ids), dtype=object)
    out[:] = list(ids)
    return out


class Results(Sequence[Hit]):
    """The hits of one query, best first: a sequence of ``Hit`` with column views.

    Stored by columns; a ``Hit`` is built only when one is asked for, so a query that only
    reads ``ids`` / ``distances`` pays for no per-hit objects. ``explain`` holds the plan
    report of ``query(..., explain=True)`` (a dict), else None.
    """

    __slots__ = ("_ids", "_distances", "_score_offset", "_metadatas", "_documents", "_vectors",
                 "_sides", "_hits", "explain")

    def __init__(self, hits: Sequence[Hit] = ()) -> None:
        hits = list(hits)
        self._hits: Optional[List[Hit]] = hits
        self._score_offset = 0.0
        self._ids = [h.id for h in hits]
        self._distances = [h.distance for h in hits]
        self._metadatas = [h.metadata for h in hits]
        self._documents = [h.document for h in hits]
        self._vectors: Optional[List[Any]] = [h.vector for h in hits]
        self._sides: Optional[List[Any]] = [h.sides for h in hits]
        self.explain: Optional[Dict[str, Any]] = None

    @classmethod
    def _from_columns(cls, ids: List[Id], distances: List[float], score_offset: float,
                      metadatas: Optional[List[Any]], documents: Optional[List[Any]],
                      vectors: Optional[Sequence[np.ndarray]] = None,
                      sides: Optional[List[Any]] = None) -> "Results":
        """Results from columns (None: the field was not included); each score is
        score_offset - distance (1 - distance under cosine, -distance otherwise)."""
        r = cls.__new__(cls)
        r._ids, r._distances, r._hits = ids, distances, None
        r._score_offset = score_offset
        r._metadatas = metadatas if metadatas is not None else [None] * len(ids)
        r._documents = documents if documents is not None else [None] * len(ids)
        r._vectors = None if vectors is None else list(vectors)
        r._sides = sides
        r.explain = None
        return r

    def _with_sides(self, sides: List[Any]) -> "Results":
        """Attaches each hit's hybrid sides (in hit order); returns self."""
        self._sides, self._hits = sides, None
        return self

    def _materialize(self) -> List[Hit]:
        if self._hits is None:
            off = self._score_offset
            vectors = self._vectors or [None] * len(self._ids)
            sides = self._sides or [None] * len(self._ids)
            self._hits = [Hit(i, d, off - d, m, doc, v, s) for i, d, m, doc, v, s in zip(
                self._ids, self._distances, self._metadatas, self._documents, vectors, sides)]
        return self._hits

    @overload
    def __getitem__(self, i: int) -> Hit: ...
    @overload
    def __getitem__(self, i: slice) -> "Results": ...

    def __getitem__(self, i: Union[int, slice]) -> Union[Hit, "Results"]:
        if isinstance(i, slice):
            return Results(self._materialize()[i])
        return self._materialize()[i]

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[Hit]:
        return iter(self._materialize())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Results) and self._ids == other._ids

    __hash__ = None  # type: ignore[assignment]

    @property
    def ids(self) -> np.ndarray:
        """int64 array when every id is an int, else an object array."""
        return _ids_array(self._ids)

    @property
    def distances(self) -> np.ndarray:
        return np.array(self._distances, dtype=np.float32)

    @property
    def scores(self) -> np.ndarray:
        if self._hits is not None:
            return np.array([h.score for h in self._hits], dtype=np.float32)
        return np.float32(self._score_offset) - self.distances

    @property
    def metadatas(self) -> List[Optional[Metadata]]:
        return list(self._metadatas)

    @property
    def documents(self) -> List[Optional[str]]:
        return list(self._documents)

    # -- tables ------------------------------------------------------------------------------

    def _hybrid(self) -> bool:
        return self._sides is not None and any(s is not None for s in self._sides)

    def _columns(self, flatten: bool = True) -> Dict[str, List[Any]]:
        return _batch_columns([self], flatten, with_query=False)

    def to_list(self) -> List[Dict[str, Any]]:
        """One plain dict per hit, best first: id, distance, score, metadata, document, plus
        vector (a list of floats) when vectors were included and sides for a hybrid query;
        JSON-serializable.

        >>> Results([Hit("a", 0.25, 0.75, {"y": 1}, "text")]).to_list()
        [{'id': 'a', 'distance': 0.25, 'score': 0.75, 'metadata': {'y': 1}, 'document': 'text'}]
        """
        with_vectors = self._vectors is not None and any(v is not None for v in self._vectors)
        out = []
        for h in self._materialize():
            row: Dict[str, Any] = {"id": h.id, "distance": float(h.distance),
                                   "score": float(h.score),
                                   "metadata": None if h.metadata is None else dict(h.metadata),
                                   "document": h.document}
            if with_vectors:
                row["vector"] = None if h.vector is None else \
                    np.asarray(h.vector, dtype=np.float32).tolist()
            if h.sides is not None:
                row["sides"] = {side: dict(v) for side, v in h.sides.items()}
            out.append(row)
        return out

    def to_pandas(self, *, flatten: bool = True) -> Any:
        """A pandas DataFrame, one row per hit, best first (needs ``vecdb[pandas]``).

        Columns: id, distance, score; for a hybrid query vector_rank, vector_distance,
        text_rank, text_score (empty where a side did not find the hit); document; then one
        column per metadata field, named after it (None / <NA> where a hit lacks it; a field
        called like one of these columns becomes "metadata.<field>"), or with
        ``flatten=False`` a single "metadata" column of dicts; then vector (arrays) when
        vectors were included. A batch query's list: ``Results.batch_to_pandas(batch)``.

        >>> col.query(q, k=5).to_pandas().columns.tolist()  # doctest: +SKIP
        ['id', 'distance', 'score', 'document', 'year', 'lang']
        """
        return display.data_frame(self._columns(flatten), "Results.to_pandas()")

    def to_arrow(self, *, flatten: bool = True) -> Any:
        """The table of ``to_pandas()`` as a ``pyarrow.Table`` (needs ``vecdb[parquet]``): a
        column whose values share no Arrow type (a str in one hit, an int in another) holds
        their JSON text; vectors are fixed_size_list<float32>.

        >>> col.query(q, k=5).to_arrow().num_rows  # doctest: +SKIP
        5
        """
        return display.arrow_table(self._columns(flatten), "Results.to_arrow()")

    @staticmethod
    def batch_to_pandas(batch: Sequence["Results"], *, flatten: bool = True) -> Any:
        """One DataFrame for the list a batch query returns: the ``to_pandas()`` columns after
        a "query" column (the query's position in the batch), hits in batch order.

        >>> Results.batch_to_pandas(col.query(Q, k=3)).groupby("query").size()  # doctest: +SKIP
        """
        return display.data_frame(_batch_columns(batch, flatten, with_query=True),
                                  "Results.batch_to_pandas()")

    @staticmethod
    def batch_to_arrow(batch: Sequence["Results"], *, flatten: bool = True) -> Any:
        """``batch_to_pandas`` as a ``pyarrow.Table``."""
        return display.arrow_table(_batch_columns(batch, flatten, with_query=True),
                                   "Results.batch_to_arrow()")

    # -- reprs -------------------------------------------------------------------------------

    def _shown(self, html_mode: bool) -> Tuple[List[str], List[List[str]]]:
        n = min(len(self), display.MAX_ROWS)
        hits = self._materialize()[:n]
        fixed = [("#", [str(i) for i in range(n)]),
                 ("id", [display.plain(h.id) for h in hits]),
                 ("distance", [display.number(h.distance) for h in hits]),
                 ("score", [display.number(h.score) for h in hits])]
        if self._hybrid():
            for name, side in (("vector_rank", "vector"), ("text_rank", "text")):
                fixed.append((name, [display.plain(((h.sides or {}).get(side) or {}).get("rank"))
                                     for h in hits]))
        vectors = [h.vector for h in hits] if self._vectors is not None else None
        return display.item_table(fixed, [h.metadata for h in hits],
                                  [h.document for h in hits], vectors, html_mode=html_mode)

    def _title(self) -> str:
        title = f"{len(self):,} hit{'' if len(self) == 1 else 's'}"
        if self.explain:
            e = self.explain
            title += f"; plan {e.get('plan')}, {e.get('matches', 0):,} matches, " \
                     f"{e.get('total_ms', 0.0):.2f} ms"
        return title

    def __repr__(self) -> str:
        return _table_repr(self, "Results", "hits")

    def _repr_html_(self) -> str:
        return _table_html(self, "Results", "hits")


def _batch_columns(batch: Sequence[Results], flatten: bool,
                   with_query: bool) -> Dict[str, List[Any]]:
    """The table columns of one or more Results (module display.py names them)."""
    batch = list(batch)
    for i, r in enumerate(batch):
        if not isinstance(r, Results):
            raise InvalidArgumentError(f"batch[{i}]: expected Results, got {type(r).__name__}")
    base: Dict[str, List[Any]] = {"query": []} if with_query else {}
    base.update({"id": [], "distance": [], "score": []})
    hybrid = any(r._hybrid() for r in batch)
    if hybrid:
        base.update({name: [] for name, _, _ in display.SIDE_COLUMNS})
    base["document"] = []
    metadatas: List[Any] = []
    vectors: List[Any] = []
    with_vectors = any(r._vectors is not None and any(v is not None for v in r._vectors)
                       for r in batch)
    for q, r in enumerate(batch):
        for h in r._materialize():
            if with_query:
                base["query"].append(q)
            base["id"].append(h.id)
            base["distance"].append(float(h.distance))
            base["score"].append(float(h.score))
            if hybrid:
                for name, side, key in display.SIDE_COLUMNS:
                    base[name].append(((h.sides or {}).get(side) or {}).get(key))
            base["document"].append(h.document)
            metadatas.append(h.metadata)
            vectors.append(h.vector)
    tail = {"vector": vectors} if with_vectors else {}
    return display.flat_columns(base, metadatas, flatten, tail)


def _table_repr(items: Any, label: str, unit: str) -> str:
    """The text repr of Results / Records: a title, then a table of the first rows."""
    if not len(items):
        return f"{label}({items._title()})"
    head, rows = items._shown(html_mode=False)
    more = display.more_line(len(rows), len(items), unit)
    return f"{label}({items._title()})\n" + display.text_table(head, rows) + \
        (f"\n{more}" if more else "")


def _table_html(items: Any, label: str, unit: str) -> str:
    """The notebook (HTML) table of Results / Records."""
    head, rows = items._shown(html_mode=True)
    return display.html_table(head, rows, caption=f"{label}: {items._title()}",
                              footer=display.more_line(len(rows), len(items), unit))


class Records(List[Record]):
    """A list of ``Record`` (what ``Collection.peek`` returns) with a table repr, an HTML
    table for notebooks and ``to_pandas`` / ``to_arrow`` / ``to_list``. Wrap any list of
    records to get them: ``Records(col.get(where=...)).to_pandas()``.

    >>> Records([Record("a", {"y": 1}, "text")]).to_list()
    [{'id': 'a', 'metadata': {'y': 1}, 'document': 'text'}]
    """

    def __init__(self, records: Iterable[Record] = ()) -> None:
        super().__init__(records)
        for i, r in enumerate(self):
            if not isinstance(r, Record):
                raise InvalidArgumentError(f"records[{i}]: expected a vecdb.Record, got "
                                           f"{type(r).__name__}")

    @classmethod
    def _trusted(cls, records: List[Record]) -> "Records":
        """Records of a list known to hold only Record (get(): no per-item check)."""
        out = cls.__new__(cls)
        list.__init__(out, records)
        return out

    @overload
    def __getitem__(self, i: SupportsIndex) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> "Records": ...

    def __getitem__(self, i: Union[SupportsIndex, slice]) -> Union[Record, "Records"]:
        if isinstance(i, slice):
            return Records._trusted(super().__getitem__(i))
        return super().__getitem__(i)

    @property
    def ids(self) -> np.ndarray:
        """int64 array when every id is an int, else an object array."""
        return _ids_array([r.id for r in self])

    def _with_vectors(self) -> bool:
        return any(r.vector is not None for r in self)

    def _columns(self, flatten: bool) -> Dict[str, List[Any]]:
        base = {"id": [r.id for r in self], "document": [r.document for r in self]}
        tail = {"vector": [r.vector for r in self]} if self._with_vectors() else {}
        return display.flat_columns(base, [r.metadata for r in self], flatten, tail)

    def to_list(self) -> List[Dict[str, Any]]:
        """One plain dict per record: id, metadata, document, plus vector (a list of floats)
        when any record has one; JSON-serializable."""
        with_vectors = self._with_vectors()
        out = []
        for r in self:
            row: Dict[str, Any] = {"id": r.id,
                                   "metadata": None if r.metadata is None else dict(r.metadata),
                                   "document": r.document}
            if with_vectors:
                row["vector"] = None if r.vector is None else \
                    np.asarray(r.vector, dtype=np.float32).tolist()
            out.append(row)
        return out

    def to_pandas(self, *, flatten: bool = True) -> Any:
        """A DataFrame, one row per record: id, document, one column per metadata field (or
        one "metadata" column with ``flatten=False``; see ``Results.to_pandas``), vector.

        >>> col.peek(3).to_pandas()  # doctest: +SKIP
        """
        return display.data_frame(self._columns(flatten), "Records.to_pandas()")

    def to_arrow(self, *, flatten: bool = True) -> Any:
        """The table of ``to_pandas()`` as a ``pyarrow.Table`` (see ``Results.to_arrow``)."""
        return display.arrow_table(self._columns(flatten), "Records.to_arrow()")

    def _shown(self, html_mode: bool) -> Tuple[List[str], List[List[str]]]:
        shown = list.__getitem__(self, slice(0, display.MAX_ROWS))
        fixed = [("#", [str(i) for i in range(len(shown))]),
                 ("id", [display.plain(r.id) for r in shown])]
        vectors = [r.vector for r in shown]
        return display.item_table(fixed, [r.metadata for r in shown],
                                  [r.document for r in shown], vectors, html_mode=html_mode)

    def _title(self) -> str:
        return f"{len(self):,} record{'' if len(self) == 1 else 's'}"

    def __repr__(self) -> str:
        return _table_repr(self, "Records", "records")

    def _repr_html_(self) -> str:
        return _table_html(self, "Records", "records")
