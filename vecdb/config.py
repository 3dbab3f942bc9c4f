"""Typed index configurations given to ``create_collection(index=...)``.

    >>> import vecdb
    >>> vecdb.HNSW(m=32)
    HNSW(m=32, ef_construction=200, ef_search=64)
    >>> vecdb.Flat()
    Flat()
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any, Dict, Union

from .errors import InvalidArgumentError


def _int_in(owner: str, name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise InvalidArgumentError(f"{owner}.{name}: expected an int in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class Flat:
    """Exact search: every query scans every (allowed) row. Always 100% recall."""

    kind = "flat"

    def to_dict(self) -> Dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


@dataclass(frozen=True)
class HNSW:
    """Graph index (the default): approximate search in far less than a full scan.

    m: links per node (level 0 keeps 2*m); ef_construction: candidate list while inserting;
    ef_search: default candidate list per query (``query(ef=...)`` overrides it). Larger values
    give higher recall for more time and memory.
    """

    m: int = 16
    ef_construction: int = 200
    ef_search: int = 64

    kind = "hnsw"

    def __post_init__(self) -> None:
        _int_in("HNSW", "m", self.m, 2, 256)
        _int_in("HNSW", "ef_construction", self.ef_construction, 1, 1 << 20)
        _int_in("HNSW", "ef_search", self.ef_search, 1, 1 << 20)

    def to_dict(self) -> Dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


IndexConfig = Union[Flat, HNSW]
_KINDS = {Flat.kind: Flat, HNSW.kind: HNSW}


def index_from_dict(d: Dict[str, Any]) -> IndexConfig:
    """Rebuilds the config stored in the catalog."""
    params = dict(d)
    kind = params.pop("type", None)
    if kind not in _KINDS:
        raise InvalidArgumentError(f"index: unknown index type {kind!r} in stored config")
    return _KINDS[kind](**params)


def check_index(index: Any) -> IndexConfig:
    if index is None:
        return HNSW()
    if not isinstance(index, tuple(_KINDS.values())):
        raise InvalidArgumentError(
            f"index: expected an index config such as vecdb.HNSW() or vecdb.Flat(), got {index!r}"
        )
    return index
