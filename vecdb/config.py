"""Typed configurations given at ``create_collection``: the index (``index=``) and the
compression of the vectors the graph traverses (``quantization=``).

    >>> import vecdb
    >>> vecdb.HNSW(m=32)
    HNSW(m=32, ef_construction=200, ef_search=64)
    >>> vecdb.Flat()
    Flat()
    >>> vecdb.PQ(m=48)
    PQ(m=48, rescore=10, train_size=20000)
    >>> vecdb.IVFPQ(nlist=256, m=48).probes(256)
    32

They are stored in the catalog as plain maps (``to_dict``) and rebuilt by ``index_from_dict``
and ``quantization_from_dict``; the index map of a quantized HNSW carries the quantization
under the key "quantization".
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Union

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


# Rows a training needs at the least: PQ and IVF-PQ fit 256 centroids per sub-quantizer.
PQ_MIN_TRAIN = 256


@dataclass(frozen=True)
class SQ8:
    """Scalar quantization: the graph traverses one byte per dimension (a quarter of float32)
    held in RAM, then the best ``k * rescore`` candidates are rescored exactly from the
    float32 vectors on disk. Trained (per-dimension min and max) when the collection first
    holds ``train_size`` rows, or by ``col.optimize()``; until then the graph reads float32.

    >>> SQ8(rescore=2)
    SQ8(rescore=2, train_size=10000)
    """

    rescore: int = 4
    train_size: int = 10_000

    kind = "sq8"

    def __post_init__(self) -> None:
        _int_in("SQ8", "rescore", self.rescore, 1, 1 << 12)
        _int_in("SQ8", "train_size", self.train_size, 1, 1 << 40)

    def to_dict(self) -> Dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


@dataclass(frozen=True)
class PQ:
    """Product quantization: the graph traverses ``m`` bytes per vector (m sub-quantizers of
    dim/m dimensions, 256 centroids each; m must divide dim), then rescores the best
    ``k * rescore`` candidates exactly. 384-d with m=48 is 48 bytes instead of 1,536. Trained
    (k-means per sub-quantizer) when the collection first holds ``train_size`` rows (at least
    256), or by ``col.optimize()``.

    >>> PQ(m=16).m
    16
    """

    m: int = 16
    rescore: int = 10
    train_size: int = 20_000

    kind = "pq"

    def __post_init__(self) -> None:
        _int_in("PQ", "m", self.m, 1, 1 << 16)
        _int_in("PQ", "rescore", self.rescore, 1, 1 << 12)
        _int_in("PQ", "train_size", self.train_size, PQ_MIN_TRAIN, 1 << 40)

    def to_dict(self) -> Dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


@dataclass(frozen=True)
class IVFPQ:
    """Inverted file with product quantization, for collections that must not hold a graph
    in RAM: k-means splits the vectors into ``nlist`` lists; each vector is kept as the PQ
    code (``m`` bytes, ``nbits`` = 8 bits per sub-quantizer) of its offset from its list's
    centre. A query scans the ``nprobe`` closest lists (0: an eighth of the lists, at least
    16; ``query(nprobe=...)`` overrides it) and rescores the best ``k * rescore`` exactly.
    On 100k MiniLM vectors with nlist=1024 the default (128 lists) gives recall@10 ~0.94. Trained when the collection first holds
    ``train_size`` rows (0: 39 * nlist, at least 256), or by ``col.optimize()``; until then
    queries scan exactly.

    >>> IVFPQ(nlist=64, m=8)
    IVFPQ(nlist=64, m=8, nbits=8, nprobe=0, rescore=10, train_size=0)
    """

    nlist: int = 1024
    m: int = 16
    nbits: int = 8
    nprobe: int = 0
    rescore: int = 10
    train_size: int = 0

    kind = "ivfpq"

    def __post_init__(self) -> None:
        _int_in("IVFPQ", "nlist", self.nlist, 1, 1 << 20)
        _int_in("IVFPQ", "m", self.m, 1, 1 << 16)
        _int_in("IVFPQ", "nbits", self.nbits, 8, 8)
        _int_in("IVFPQ", "nprobe", self.nprobe, 0, 1 << 20)
        _int_in("IVFPQ", "rescore", self.rescore, 1, 1 << 12)
        _int_in("IVFPQ", "train_size", self.train_size, 0, 1 << 40)

    def probes(self, nlist: int) -> int:
        """Lists a query probes by default in an index of nlist lists."""
        return self.nprobe or min(nlist, max(16, nlist // 8))

    @property
    def rows_to_train(self) -> int:
        """Rows the collection must hold before training happens by itself."""
        return self.train_size or max(39 * self.nlist, PQ_MIN_TRAIN)

    def to_dict(self) -> Dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


@dataclass(frozen=True)
class BM25:
    """The text index of a collection (``create_collection(text_index=vecdb.BM25(...))``;
    ``text_index=True`` is ``BM25()``): k1 saturates term frequency, b normalizes by document
    length; ``stopwords="english"`` leaves common English words out of the index and the
    queries (None: every word counts).

    >>> BM25(k1=1.5).b
    0.75
    """

    k1: float = 1.2
    b: float = 0.75
    stopwords: Optional[str] = None

    STOPWORD_LISTS = ("english",)

    def __post_init__(self) -> None:
        for name, value, high in (("k1", self.k1, 100.0), ("b", self.b, 1.0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                    not 0.0 <= value <= high:
                raise InvalidArgumentError(f"BM25.{name}: expected a number in [0, {high:g}], "
                                           f"got {value!r}")
        if self.stopwords is not None and self.stopwords not in self.STOPWORD_LISTS:
            raise InvalidArgumentError(f"BM25.stopwords: expected None or one of "
                                       f"{self.STOPWORD_LISTS}, got {self.stopwords!r}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def text_index_from_dict(d: Dict[str, Any]) -> Optional[BM25]:
    """The text index config stored in the catalog's index map (None: no text index; a
    collection created before text indexing existed has none)."""
    value = d.get("text_index")
    if value is None or value is False:
        return None
    return BM25() if value is True else BM25(**value)


def check_text_index(value: Any) -> Optional[BM25]:
    if value is True:
        return BM25()
    if value is False or value is None:
        return None
    if isinstance(value, BM25):
        return value
    raise InvalidArgumentError(f"text_index: expected True, False or vecdb.BM25(...), got "
                               f"{value!r}")


@dataclass(frozen=True)
class RRF:
    """Reciprocal rank fusion of a hybrid query (the default): each side adds
    1 / (k + rank) for the rows it found. Robust to the sides' different score scales.

    >>> RRF().k
    60
    """

    k: int = 60

    def __post_init__(self) -> None:
        _int_in("RRF", "k", self.k, 0, 1 << 20)


@dataclass(frozen=True)
class Weighted:
    """Weighted fusion of a hybrid query: alpha * vector score + (1 - alpha) * text score,
    each min-max scaled to [0, 1] over its candidates (alpha=1: vector only).

    >>> Weighted(alpha=0.7).alpha
    0.7
    """

    alpha: float = 0.5

    def __post_init__(self) -> None:
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, numbers.Real) or not 0.0 <= a <= 1.0:
            raise InvalidArgumentError(f"Weighted.alpha: expected a number in [0, 1], got {a!r}")


IndexConfig = Union[Flat, HNSW, IVFPQ]
QuantConfig = Union[SQ8, PQ]
_KINDS = {Flat.kind: Flat, HNSW.kind: HNSW, IVFPQ.kind: IVFPQ}
_QUANT_KINDS = {SQ8.kind: SQ8, PQ.kind: PQ}


def _from_dict(d: Dict[str, Any], kinds: Dict[str, Any], what: str) -> Any:
    params = dict(d)
    kind = params.pop("type", None)
    if kind not in kinds:
        raise InvalidArgumentError(f"{what}: unknown {what} type {kind!r} in stored config")
    return kinds[kind](**params)


# Keys of the catalog's index map that configure something beside the index itself.
_NOT_INDEX_KEYS = ("quantization", "text_index")


def index_from_dict(d: Dict[str, Any]) -> IndexConfig:
    """Rebuilds the index config stored in the catalog (without its quantization and text
    index settings)."""
    return _from_dict({k: v for k, v in d.items() if k not in _NOT_INDEX_KEYS}, _KINDS,
                      "index")


def quantization_from_dict(d: Dict[str, Any]) -> Optional[QuantConfig]:
    """The quantization stored in the catalog's index map, or None."""
    q = d.get("quantization")
    return None if q is None else _from_dict(q, _QUANT_KINDS, "quantization")


def check_index(index: Any) -> IndexConfig:
    if index is None:
        return HNSW()
    if not isinstance(index, tuple(_KINDS.values())):
        raise InvalidArgumentError(
            f"index: expected an index config such as vecdb.HNSW(), vecdb.IVFPQ() or "
            f"vecdb.Flat(), got {index!r}"
        )
    return index


def check_quantization(quantization: Any, index: IndexConfig, dim: int) -> Optional[QuantConfig]:
    """The quantization config, checked against the index and dim (None: full float32)."""
    if quantization is None:
        return None
    if not isinstance(quantization, tuple(_QUANT_KINDS.values())):
        raise InvalidArgumentError(f"quantization: expected vecdb.SQ8(), vecdb.PQ(m=...) or "
                                   f"None, got {quantization!r}")
    if not isinstance(index, HNSW):
        raise InvalidArgumentError(f"quantization: {quantization!r} applies to the HNSW index "
                                   f"only, not {index!r} (IVFPQ quantizes by itself)")
    if isinstance(quantization, PQ):
        check_pq_m(quantization.m, dim, "quantization")
    return quantization


def check_pq_m(m: int, dim: int, what: str) -> None:
    if m > dim or dim % m:
        raise InvalidArgumentError(f"{what}: m={m} must divide dim={dim} (sub-vectors of "
                                   f"equal size), e.g. m={_divisor_near(dim, dim // 8)}")


def _divisor_near(dim: int, target: int) -> int:
    """The divisor of dim closest to target (ties: the smaller)."""
    return min((d for d in range(1, dim + 1) if dim % d == 0),
               key=lambda d: (abs(d - target), d))
