"""Result types: ``Hit`` (one query answer), ``Results`` (the hits of one query), ``Record``.

    >>> r = Results([Hit(id="a", distance=0.1, score=0.9, metadata={"y": 1})])
    >>> r[0].id, r.ids.tolist()
    ('a', ['a'])
"""

from __future__ import annotations

import html
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Union, overload

import numpy as np

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


def _cell(value: Any, limit: int = 48) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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

    def to_pandas(self) -> Any:
        """A DataFrame with columns id, distance, score, metadata, document (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("Results.to_pandas() needs pandas: pip install pandas") from None
        return pd.DataFrame({
            "id": list(self._ids), "distance": self.distances, "score": self.scores,
            "metadata": self.metadatas, "document": self.documents,
        })

    def _rows(self) -> List[List[str]]:
        return [[str(i), _cell(h.id), f"{h.distance:.4f}", f"{h.score:.4f}", _cell(h.metadata),
                 _cell(h.document)] for i, h in enumerate(self._materialize())]

    _HEAD = ["#", "id", "distance", "score", "metadata", "document"]

    def __repr__(self) -> str:
        if not self._ids:
            return "Results(0 hits)"
        rows = [self._HEAD] + self._rows()
        widths = [max(len(r[c]) for r in rows) for c in range(len(self._HEAD))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        return f"Results({len(self)} hits)\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self._HEAD)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self._rows()
        )
        return (f"<table class='vecdb-results'><caption>{len(self)} hits</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
