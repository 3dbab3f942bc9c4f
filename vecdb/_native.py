"""The one bridge between Python and the C core (``vecdb._core``, built from csrc/ by cffi).

Everything else in vecdb calls these functions with numpy arrays; nothing else imports ffi.
Each function validates its arguments (raising ``InvalidArgumentError`` that names the
argument), passes numpy buffers to C without copying (``ffi.from_buffer``), and turns a C
status code into an exception through ``_check``.

The SIMD level is chosen once, at import: the environment variable ``VECDB_SIMD`` (one of
``SIMD_LEVELS``) if set, else the best level this CPU supports. Every function also takes an
explicit ``simd=`` so tests can compare levels in one process.

    >>> import numpy as np
    >>> X = np.array([[0, 0], [3, 4]], dtype=np.float32)
    >>> distances(np.zeros(2, np.float32), X, "l2").tolist()
    [0.0, 25.0]
"""

from __future__ import annotations

import os
from operator import index as _index
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ._core import ffi, lib
from .errors import InvalidArgumentError, NativeError, NativeMemoryError

SIMD_LEVELS: Tuple[str, ...] = ("scalar", "avx2", "avx512")
METRICS: Dict[str, int] = {
    "l2": lib.VDB_METRIC_L2,
    "ip": lib.VDB_METRIC_IP,
    "cosine": lib.VDB_METRIC_COSINE,
}


_ERRORS = {
    lib.VDB_ERR_INVALID: InvalidArgumentError,
    lib.VDB_ERR_UNSUPPORTED: InvalidArgumentError,
    lib.VDB_ERR_NOMEM: NativeMemoryError,
    lib.VDB_ERR_THREAD: NativeError,
}


def _check(rc: int, what: str) -> None:
    """Raises the exception mapped to C status ``rc`` (no-op for VDB_OK)."""
    if rc == lib.VDB_OK:
        return
    message = ffi.string(lib.vdb_strerror(rc)).decode("ascii", "replace")
    raise _ERRORS.get(rc, NativeError)(f"{what}: {message} (status {rc})")


def _best_level() -> int:
    level = ffi.new("int *")
    _check(lib.vdb_simd_best(level), "vdb_simd_best")
    return int(level[0])


_BEST = _best_level()


def simd_supported() -> Tuple[str, ...]:
    """The SIMD levels this CPU and build can run, lowest first (always includes "scalar")."""
    return SIMD_LEVELS[: _BEST + 1]


def _choose_simd() -> str:
    value = os.environ.get("VECDB_SIMD")
    if value is None or value.strip() == "":
        return SIMD_LEVELS[_BEST]
    level = value.strip().lower()
    if level not in SIMD_LEVELS:
        raise InvalidArgumentError(
            f"VECDB_SIMD: unknown SIMD level {value!r}; expected one of {', '.join(SIMD_LEVELS)}")
    if level not in simd_supported():
        raise InvalidArgumentError(
            f"VECDB_SIMD: {value!r} is not supported by this CPU; supported: "
            f"{', '.join(simd_supported())}")
    return level


SIMD: str = _choose_simd()
_SIMD_LEVEL = SIMD_LEVELS.index(SIMD)


def _simd_level(simd: Optional[str]) -> int:
    if simd is None:
        return _SIMD_LEVEL
    try:
        level = SIMD_LEVELS.index(simd)
    except ValueError:
        raise InvalidArgumentError(
            f"simd: unknown SIMD level {simd!r}; expected one of {', '.join(SIMD_LEVELS)}"
        ) from None
    if level > _BEST:
        raise InvalidArgumentError(
            f"simd: {simd!r} is not supported by this CPU; supported: "
            f"{', '.join(simd_supported())}")
    return level


def _metric(metric: str) -> int:
    try:
        return METRICS[metric]
    except (KeyError, TypeError):
        raise InvalidArgumentError(
            f"metric: unknown metric {metric!r}; expected one of {', '.join(METRICS)}") from None


_F32 = np.dtype(np.float32)
_U64 = np.dtype(np.uint64)


def _is_float_matrix(a: object) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == _F32 and a.ndim == 2 \
        and a.flags.c_contiguous


def _float_matrix(a: object, name: str) -> np.ndarray:
    if not _is_float_matrix(a):
        raise InvalidArgumentError(
            f"{name}: expected a 2-D C-contiguous float32 array, got {_describe(a)}")
    return a


def _bitset(bits: object, name: str, n_bits: int):
    """ffi pointer to a uint64 bitset holding at least n_bits bits (NULL for None)."""
    if bits is None:
        return ffi.NULL
    if not isinstance(bits, np.ndarray) or bits.dtype != _U64 or bits.ndim != 1 \
            or not bits.flags.c_contiguous:
        raise InvalidArgumentError(
            f"{name}: expected a 1-D C-contiguous uint64 array, got {_describe(bits)}")
    words = (n_bits + 63) >> 6
    if bits.shape[0] < words:
        raise InvalidArgumentError(
            f"{name}: {bits.shape[0]} words hold fewer than {n_bits} bits ({words} words needed)")
    return ffi.from_buffer("uint64_t[]", bits)


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        order = "C-contiguous" if a.flags.c_contiguous else "non-contiguous"
        return f"{order} {a.dtype} array of shape {a.shape}"
    return type(a).__name__


def _count(value: object, name: str, low: int = 0, high: Optional[int] = None) -> int:
    if type(value) is int and value >= low and (high is None or value <= high):
        return value  # the common case, without the generic path below
    try:
        v = _index(value)
    except TypeError:
        raise InvalidArgumentError(f"{name}: expected an int, got {type(value).__name__}") from None
    if v < low or (high is not None and v > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise InvalidArgumentError(f"{name}: expected an int {bound}, got {v}")
    return v


def distances(query: np.ndarray, rows: np.ndarray, metric: str, *,
              simd: Optional[str] = None) -> np.ndarray:
    """Distances (float32 [n]) from ``query`` (float32 [dim]) to each of ``rows`` [n, dim].

    L2 is squared Euclidean, IP is the negative dot product, cosine is 1 - cos (1.0 when a
    vector has zero norm): smaller is always closer.
    """
    level = _simd_level(simd)
    m = _metric(metric)
    if not isinstance(query, np.ndarray) or query.dtype != np.float32 or query.ndim != 1 \
            or not query.flags.c_contiguous:
        raise InvalidArgumentError(
            f"query: expected a 1-D C-contiguous float32 array, got {_describe(query)}")
    _float_matrix(rows, "rows")
    n, dim = rows.shape
    if query.shape[0] != dim:
        raise InvalidArgumentError(f"query: dim {query.shape[0]} does not match rows' dim {dim}")
    if dim == 0:
        raise InvalidArgumentError("query: dim must be at least 1")
    out = np.empty(n, dtype=np.float32)
    rc = lib.vdb_distances(level, m, ffi.from_buffer("float[]", query),
                           ffi.from_buffer("float[]", rows), n, dim,
                           ffi.from_buffer("float[]", out, require_writable=True))
    if rc:
        _check(rc, "distances")
    return out


def flat_search(segments: Sequence[np.ndarray], segment_shift: int, n_rows: int,
                queries: np.ndarray, k: int, metric: str, *,
                allow: Optional[np.ndarray] = None, deny: Optional[np.ndarray] = None,
                n_threads: int = 0, simd: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Exact k-nearest rows of each query: (rows int64 [nq, k], distances float32 [nq, k]).

    Row r lives in ``segments[r >> segment_shift][r & (2**segment_shift - 1)]``; each segment
    is a 2-D C-contiguous float32 array (e.g. a view of a memory map) covering at least its
    visible rows. A row takes part iff it is in ``allow`` (if given) and not in ``deny`` (if
    given), both uint64 bitsets (bit r = word r // 64, bit r % 64). Results are best first,
    ties to the smaller row; unused slots hold row -1 and distance +inf. ``n_threads`` 0 means
    one per online CPU.
    """
    level = _simd_level(simd)
    m = _metric(metric)
    _float_matrix(queries, "queries")
    nq, dim = queries.shape
    if dim == 0:
        raise InvalidArgumentError("queries: dim must be at least 1")
    k = _count(k, "k")
    n_rows = _count(n_rows, "n_rows", 0, 2**63 - 1)
    shift = _count(segment_shift, "segment_shift", 0, 63)
    n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)

    needed = ((n_rows - 1) >> shift) + 1 if n_rows else 0
    if len(segments) < needed:
        raise InvalidArgumentError(
            f"segments: {len(segments)} given, {needed} needed for {n_rows} rows")
    seg_ptrs = []
    for i in range(needed):
        seg = segments[i]
        if not _is_float_matrix(seg):
            _float_matrix(seg, f"segments[{i}]")
        if seg.shape[1] != dim:
            raise InvalidArgumentError(
                f"queries: dim {dim} does not match segments[{i}] dim {seg.shape[1]}")
        visible = min(n_rows - (i << shift), 1 << shift)
        if seg.shape[0] < visible:
            raise InvalidArgumentError(
                f"segments[{i}]: holds {seg.shape[0]} rows, {visible} visible rows expected")
        seg_ptrs.append(ffi.from_buffer("float[]", seg))

    allow_p = _bitset(allow, "allow", n_rows)
    deny_p = _bitset(deny, "deny", n_rows)
    out_rows = np.empty((nq, k), dtype=np.int64)
    out_dist = np.empty((nq, k), dtype=np.float32)
    seg_array = ffi.new("const float *[]", seg_ptrs) if seg_ptrs else ffi.NULL
    rows = ffi.new("vdb_rows *", (seg_array, needed, shift, n_rows, dim))
    rc = lib.vdb_flat_search(level, m, rows, ffi.from_buffer("float[]", queries), nq, k,
                             allow_p, deny_p, n_threads,
                             ffi.from_buffer("int64_t[]", out_rows, require_writable=True),
                             ffi.from_buffer("float[]", out_dist, require_writable=True))
    if rc:
        _check(rc, "flat_search")
    return out_rows, out_dist


def bitset_count(bits: np.ndarray, n_bits: int) -> int:
    """Number of set bits among the first ``n_bits`` bits of a uint64 bitset."""
    n_bits = _count(n_bits, "n_bits")
    p = _bitset(bits, "bits", n_bits)
    count = ffi.new("size_t *")
    rc = lib.vdb_bitset_count(p, n_bits, count)
    if rc:
        _check(rc, "bitset_count")
    return int(count[0])


__all__ = ["SIMD", "SIMD_LEVELS", "METRICS", "simd_supported",
           "distances", "flat_search", "bitset_count"]
