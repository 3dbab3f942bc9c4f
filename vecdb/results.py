"""Result types: ``Hit`` (one query answer), ``Results`` (the hits of one query), ``Record``.

    >>> r = Results([Hit(id="a", distance=0.1, score=0.9, metadata={"y": 1})])
    >>> r[0].id, r.ids.tolist()
    ('a', ['a'])
"""

from __future__ import annotations

import html
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence, Union, overload

import numpy as np

from .types import Id, Metadata


class Hit(NamedTuple):
    """One nearest neighbour: ``distance`` (smaller is closer) and ``score`` (larger is closer).

    An immutable named tuple (cheap to build: a query makes k of them).
    """

    id: Id
    distance: float
    score: float
    metadata: Optional[Metadata] = None
    document: Optional[str] = None
    vector: Optional[np.ndarray] = None


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
    """The hits of one query, best first. A sequence of ``Hit`` with column views."""

    __slots__ = ("_hits",)

    def __init__(self, hits: List[Hit]) -> None:
        self._hits = hits

    @overload
    def __getitem__(self, i: int) -> Hit: ...
    @overload
    def __getitem__(self, i: slice) -> "Results": ...

    def __getitem__(self, i: Union[int, slice]) -> Union[Hit, "Results"]:
        if isinstance(i, slice):
            return Results(self._hits[i])
        return self._hits[i]

    def __len__(self) -> int:
        return len(self._hits)

    def __iter__(self) -> Iterator[Hit]:
        return iter(self._hits)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Results) and [h.id for h in self] == [h.id for h in other]

    __hash__ = None  # type: ignore[assignment]

    @property
    def ids(self) -> np.ndarray:
        """int64 array when every id is an int, else an object array."""
        return _ids_array([h.id for h in self._hits])

    @property
    def distances(self) -> np.ndarray:
        return np.array([h.distance for h in self._hits], dtype=np.float32)

    @property
    def scores(self) -> np.ndarray:
        return np.array([h.score for h in self._hits], dtype=np.float32)

    @property
    def metadatas(self) -> List[Optional[Metadata]]:
        return [h.metadata for h in self._hits]

    @property
    def documents(self) -> List[Optional[str]]:
        return [h.document for h in self._hits]

    def to_pandas(self) -> Any:
        """A DataFrame with columns id, distance, score, metadata, document (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("Results.to_pandas() needs pandas: pip install pandas") from None
        return pd.DataFrame({
            "id": [h.id for h in self._hits], "distance": self.distances, "score": self.scores,
            "metadata": self.metadatas, "document": self.documents,
        })

    def _rows(self) -> List[List[str]]:
        return [[str(i), _cell(h.id), f"{h.distance:.4f}", f"{h.score:.4f}", _cell(h.metadata),
                 _cell(h.document)] for i, h in enumerate(self._hits)]

    _HEAD = ["#", "id", "distance", "score", "metadata", "document"]

    def __repr__(self) -> str:
        if not self._hits:
            return "Results(0 hits)"
        rows = [self._HEAD] + self._rows()
        widths = [max(len(r[c]) for r in rows) for c in range(len(self._HEAD))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        return f"Results({len(self._hits)} hits)\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self._HEAD)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self._rows()
        )
        return (f"<table class='vecdb-results'><caption>{len(self._hits)} hits</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
