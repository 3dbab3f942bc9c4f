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
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ._core import ffi, lib
from .errors import (CorruptionError, FormatVersionError, InvalidArgumentError, NativeError,
                     NativeMemoryError)

SIMD_LEVELS: Tuple[str, ...] = ("scalar", "avx2", "avx512")
METRICS: Dict[str, int] = {
    "l2": lib.VDB_METRIC_L2,
    "ip": lib.VDB_METRIC_IP,
    "cosine": lib.VDB_METRIC_COSINE,
}
_METRIC_NAMES: Dict[int, str] = {v: k for k, v in METRICS.items()}


_ERRORS = {
    lib.VDB_ERR_INVALID: InvalidArgumentError,
    lib.VDB_ERR_UNSUPPORTED: InvalidArgumentError,
    lib.VDB_ERR_NOMEM: NativeMemoryError,
    lib.VDB_ERR_THREAD: NativeError,
    lib.VDB_ERR_CORRUPT: CorruptionError,
    lib.VDB_ERR_VERSION: FormatVersionError,
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


def _rows(segments: Sequence[np.ndarray], shift: int, n_rows: int, dim: int, what: str):
    """A ``Rows``: the ``vdb_rows *`` over rows [0, n_rows) of ``segments`` together with
    the pointer array and segment buffers it points to (alive as long as the ``Rows``).
    Checked: each needed segment is a 2-D C-contiguous float32 array of ``dim`` columns
    holding at least its visible rows."""
    def check(seg: object, i: int) -> None:
        if not _is_float_matrix(seg):
            _float_matrix(seg, f"segments[{i}]")
        if seg.shape[1] != dim:
            raise InvalidArgumentError(
                f"{what}: dim {dim} does not match segments[{i}] dim {seg.shape[1]}")

    needed, seg_ptrs = _segment_pointers(segments, shift, n_rows, "segments", "float[]", check)
    seg_array = ffi.new("const float *[]", seg_ptrs) if seg_ptrs else ffi.NULL
    rows = ffi.new("vdb_rows *", (seg_array, needed, shift, n_rows, dim))
    return Rows(rows, seg_array, seg_ptrs)


def _segment_pointers(segments: Sequence[np.ndarray], shift: int, n_rows: int, name: str,
                      ctype: str, check: Callable[[object, int], None]) -> Tuple[int, list]:
    """(segments needed for rows [0, n_rows), their buffer pointers), after check(segment,
    i) and the check that each holds its visible rows: shared by float and code rows."""
    needed = ((n_rows - 1) >> shift) + 1 if n_rows else 0
    if len(segments) < needed:
        raise InvalidArgumentError(
            f"{name}: {len(segments)} given, {needed} needed for {n_rows} rows")
    ptrs = []
    for i in range(needed):
        seg = segments[i]
        check(seg, i)
        visible = min(n_rows - (i << shift), 1 << shift)
        if seg.shape[0] < visible:
            raise InvalidArgumentError(
                f"{name}[{i}]: holds {seg.shape[0]} rows, {visible} visible rows expected")
        ptrs.append(ffi.from_buffer(ctype, seg))
    return needed, ptrs


class Rows:
    """A ``vdb_rows *`` (float rows) or ``vdb_code_rows *`` (code rows) with everything it
    points to (the pointer array, the segment buffers), from ``float_rows`` / ``code_rows``."""

    __slots__ = ("ptr", "_array", "_segments")

    def __init__(self, ptr, array, segments) -> None:
        self.ptr = ptr
        self._array = array
        self._segments = segments


def _stats(stats: Optional[dict]):
    """A zeroed ``vdb_search_stats *`` when the caller asked for counts, else NULL."""
    if stats is None:
        return ffi.NULL
    if not isinstance(stats, dict):
        raise InvalidArgumentError(f"stats: expected a dict or None, got {type(stats).__name__}")
    return ffi.new("vdb_search_stats *")


def _add_stats(stats: Optional[dict], counts) -> None:
    """Adds the C counts to ``stats["visited"]`` / ``stats["distances"]`` (created at 0)."""
    if stats is not None:
        stats["visited"] = stats.get("visited", 0) + int(counts.visited)
        stats["distances"] = stats.get("distances", 0) + int(counts.distances)


def flat_search(segments: Sequence[np.ndarray], segment_shift: int, n_rows: int,
                queries: np.ndarray, k: int, metric: str, *,
                allow: Optional[np.ndarray] = None, deny: Optional[np.ndarray] = None,
                n_threads: int = 0, simd: Optional[str] = None,
                stats: Optional[dict] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Exact k-nearest rows of each query: (rows int64 [nq, k], distances float32 [nq, k]).

    Row r lives in ``segments[r >> segment_shift][r & (2**segment_shift - 1)]``; each segment
    is a 2-D C-contiguous float32 array (e.g. a view of a memory map) covering at least its
    visible rows. A row takes part iff it is in ``allow`` (if given) and not in ``deny`` (if
    given), both uint64 bitsets (bit r = word r // 64, bit r % 64). Results are best first,
    ties to the smaller row; unused slots hold row -1 and distance +inf. ``n_threads`` 0 means
    one per online CPU. ``stats`` (a dict): "visited" (rows examined, summed over the
    queries) and "distances" (the same count) are added to it.
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

    allow_p = _bitset(allow, "allow", n_rows)
    deny_p = _bitset(deny, "deny", n_rows)
    counts = _stats(stats)
    rows = _rows(segments, shift, n_rows, dim, "queries")
    out_rows = np.empty((nq, k), dtype=np.int64)
    out_dist = np.empty((nq, k), dtype=np.float32)
    rc = lib.vdb_flat_search(level, m, rows.ptr, ffi.from_buffer("float[]", queries), nq, k,
                             allow_p, deny_p, n_threads,
                             ffi.from_buffer("int64_t[]", out_rows, require_writable=True),
                             ffi.from_buffer("float[]", out_dist, require_writable=True),
                             counts)
    if rc:
        _check(rc, "flat_search")
    if stats is not None:
        _add_stats(stats, counts)
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


def _writable_buffer(buffer: object, name: str):
    """(char[] cdata, nbytes) of a writable buffer (bytearray, mmap ACCESS_COPY/WRITE, numpy)."""
    try:
        cbuf = ffi.from_buffer("char[]", buffer, require_writable=True)
    except (TypeError, BufferError):
        raise InvalidArgumentError(
            f"{name}: expected a writable buffer (bytearray, writable mmap, numpy array), "
            f"got {type(buffer).__name__}") from None
    if int(ffi.cast("uintptr_t", cbuf)) & 7:
        ffi.release(cbuf)
        raise InvalidArgumentError(f"{name}: the buffer's memory must be 8-byte aligned")
    return cbuf, len(cbuf)


def _readable_buffer(buffer: object, name: str):
    try:
        return ffi.from_buffer("char[]", buffer)
    except TypeError:
        raise InvalidArgumentError(
            f"{name}: expected a buffer (bytes, bytearray, mmap, numpy array), "
            f"got {type(buffer).__name__}") from None


class Hnsw:
    """An HNSW graph over float32 rows held by the caller (csrc/hnsw*.c).

    Node i is row i of the segments handed to ``add`` and ``search`` (the graph never copies
    vectors). ``search`` may run from many threads while one thread runs ``add``; ``add``,
    ``serialize_into`` and ``close`` must not run concurrently with each other, and ``close``
    not with anything.

        >>> import numpy as np
        >>> X = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
        >>> g = Hnsw.new(8, "l2", m=8, ef_construction=32)
        >>> g.add([X], 20, 100)
        >>> rows, dist = g.search([X], 20, 100, X[:1], 1, 16)
        >>> int(rows[0, 0])
        0
    """

    __slots__ = ("_ptr", "_buffer", "_cbuf", "_dim", "_metric", "_m", "_efc", "_seed",
                 "_rows_key", "_rows_val", "__weakref__")

    def __init__(self, ptr, buffer=None, cbuf=None) -> None:
        self._ptr = ffi.gc(ptr, lib.vdb_hnsw_free)
        self._buffer = buffer
        self._cbuf = cbuf
        self._rows_key = None
        self._rows_val = None

    @classmethod
    def new(cls, dim: int, metric: str, *, m: int, ef_construction: int, seed: int = 0,
            simd: Optional[str] = None) -> "Hnsw":
        """An empty graph for rows of ``dim`` floats under ``metric`` ("l2", "ip", "cosine");
        ``m`` links per node on upper levels (2m on level 0), in [2, 256]."""
        level = _simd_level(simd)
        mt = _metric(metric)
        dim = _count(dim, "dim", 1)
        m = _count(m, "m", 2, 256)
        ef_construction = _count(ef_construction, "ef_construction", 1, 2**32 - 1)
        seed = _count(seed, "seed", 0, 2**64 - 1)
        params = ffi.new("vdb_hnsw_params *", (m, ef_construction, seed))
        out = ffi.new("vdb_hnsw **")
        _check(lib.vdb_hnsw_new(params, dim, mt, level, out), "Hnsw.new")
        g = cls(out[0])
        g._dim, g._metric, g._m, g._efc, g._seed = dim, metric, m, ef_construction, seed
        return g

    @classmethod
    def load(cls, buffer, *, simd: Optional[str] = None) -> "Hnsw":
        """Opens a checkpoint image in place (no copy; see vdb_hnsw_load). ``buffer`` must be
        writable and 8-byte aligned (an mmap with ACCESS_COPY is the intended one); the graph
        keeps a reference to it until ``close``. Raises CorruptionError / FormatVersionError."""
        level = _simd_level(simd)
        cbuf, size = _writable_buffer(buffer, "buffer")
        out = ffi.new("vdb_hnsw **")
        rc = lib.vdb_hnsw_load(cbuf, size, level, out)
        if rc:
            ffi.release(cbuf)
            _check(rc, "Hnsw.load")
        g = cls(out[0], buffer, cbuf)
        info = _image_info(cbuf, size)
        g._dim, g._metric, g._m = info["dim"], info["metric"], info["m"]
        g._efc, g._seed = info["ef_construction"], info["seed"]
        return g

    def _graph(self):
        ptr = self._ptr
        if ptr is None:
            raise InvalidArgumentError("hnsw graph is closed")
        return ptr

    def close(self) -> None:
        """Frees the graph now (idempotent), then lets go of a loaded image's buffer."""
        ptr, self._ptr = self._ptr, None
        if ptr is None:
            return
        ffi.release(ptr)  # runs the ffi.gc destructor (vdb_hnsw_free) now, once
        if self._cbuf is not None:
            ffi.release(self._cbuf)
        self._cbuf = self._buffer = None
        self._rows_key = self._rows_val = None

    def _rows(self, segments, segment_shift, n_rows):
        """The vdb_rows of (segments, shift, n_rows), cached while a tuple of segments is
        passed again (a tuple cannot change; a list is checked and converted every call)."""
        key = self._rows_key
        if key is not None and key[0] is segments and key[1] == segment_shift \
                and key[2] == n_rows:
            return self._rows_val
        n_rows = _count(n_rows, "n_rows", 0, 2**32 - 2)
        shift = _count(segment_shift, "segment_shift", 0, 31)
        rows = _rows(segments, shift, n_rows, self._dim, "segments")
        if type(segments) is tuple:
            self._rows_key = (segments, segment_shift, n_rows)
            self._rows_val = rows
        return rows

    def add(self, segments: Sequence[np.ndarray], segment_shift: int, n_rows: int, *,
            n_threads: int = 0) -> None:
        """Inserts rows [n_nodes, n_rows) as nodes, on ``n_threads`` threads (0 = all CPUs)."""
        ptr = self._graph()
        n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)
        rows = self._rows(segments, segment_shift, n_rows)
        if rows.ptr.n_rows < self.n_nodes:
            raise InvalidArgumentError(
                f"n_rows: {n_rows} is below the graph's {self.n_nodes} nodes")
        rc = lib.vdb_hnsw_add(ptr, rows.ptr, n_threads)
        if rc:
            _check(rc, "Hnsw.add")

    def search(self, segments: Sequence[np.ndarray], segment_shift: int, n_rows: int,
               queries: np.ndarray, k: int, ef: int, *, allow: Optional[np.ndarray] = None,
               deny: Optional[np.ndarray] = None, n_threads: int = 0,
               stats: Optional[dict] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(rows int64 [nq, k], distances float32 [nq, k]) of each query, best first; unused
        slots hold row -1 / +inf. Rows outside ``allow`` or inside ``deny`` (uint64 bitsets)
        route the search but are never returned; ``ef`` is raised to ``k`` when smaller.
        ``stats`` (a dict): "visited" (nodes whose links were read) and "distances"
        (distance computations), summed over the queries, are added to it."""
        ptr = self._graph()
        if not _is_float_matrix(queries):
            _float_matrix(queries, "queries")
        nq, dim = queries.shape
        if dim != self._dim:
            raise InvalidArgumentError(f"queries: dim {dim} does not match the graph's {self._dim}")
        if type(k) is not int or k < 0:
            k = _count(k, "k")
        if type(ef) is not int or ef < 0:
            ef = _count(ef, "ef")
        if type(n_threads) is not int or n_threads < 0:
            n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)
        rows = self._rows(segments, segment_shift, n_rows)
        n_rows = rows.ptr.n_rows
        allow_p = ffi.NULL if allow is None else _bitset(allow, "allow", n_rows)
        deny_p = ffi.NULL if deny is None else _bitset(deny, "deny", n_rows)
        counts = ffi.NULL if stats is None else _stats(stats)
        out_rows = np.empty((nq, k), dtype=np.int64)
        out_dist = np.empty((nq, k), dtype=np.float32)
        rc = lib.vdb_hnsw_search(ptr, rows.ptr, ffi.from_buffer("float[]", queries), nq, k, ef,
                                 allow_p, deny_p, n_threads,
                                 ffi.from_buffer("int64_t[]", out_rows, require_writable=True),
                                 ffi.from_buffer("float[]", out_dist, require_writable=True),
                                 counts)
        if rc:
            _check(rc, "Hnsw.search")
        if stats is not None:
            _add_stats(stats, counts)
        return out_rows, out_dist

    def search_codes(self, quantizer: "Quantizer", code_segments: Sequence[np.ndarray],
                     code_shift: int, n_rows: int, queries: np.ndarray, k: int, ef: int, *,
                     allow: Optional[np.ndarray] = None, deny: Optional[np.ndarray] = None,
                     n_threads: int = 0, stats: Optional[dict] = None,
                     simd: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
        """``search`` with every distance read from code rows (ADC of ``quantizer``) instead
        of float rows: row r's code is ``code_segments[r >> code_shift][r & mask]`` (uint8
        [rows, code_size] arrays), or a ``code_rows`` result (then code_shift and n_rows are
        ignored). Distances are ADC distances: rescore with ``rescore``."""
        ptr = self._graph()
        level = _simd_level(simd)
        if not isinstance(quantizer, Quantizer):
            raise InvalidArgumentError(
                f"quantizer: expected a Quantizer, got {type(quantizer).__name__}")
        _float_matrix(queries, "queries")
        nq, dim = queries.shape
        if dim != self._dim:
            raise InvalidArgumentError(f"queries: dim {dim} does not match the graph's {self._dim}")
        k = _count(k, "k")
        ef = _count(ef, "ef")
        n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)
        codes = code_segments if isinstance(code_segments, Rows) and \
            ffi.typeof(code_segments.ptr) is _CODE_ROWS_T else \
            code_rows(code_segments, code_shift, n_rows, quantizer.code_size)
        n_rows = codes.ptr.n_rows
        allow_p = _bitset(allow, "allow", n_rows)
        deny_p = _bitset(deny, "deny", n_rows)
        counts = _stats(stats)
        out_rows = np.empty((nq, k), dtype=np.int64)
        out_dist = np.empty((nq, k), dtype=np.float32)
        rc = lib.vdb_hnsw_search_codes(
            ptr, level, quantizer.ptr, codes.ptr, ffi.from_buffer("float[]", queries), nq, k,
            ef, allow_p, deny_p, n_threads,
            ffi.from_buffer("int64_t[]", out_rows, require_writable=True),
            ffi.from_buffer("float[]", out_dist, require_writable=True), counts)
        if rc:
            _check(rc, "Hnsw.search_codes")
        if stats is not None:
            _add_stats(stats, counts)
        return out_rows, out_dist

    def _info(self):
        n = ffi.new("size_t[2]")
        _check(lib.vdb_hnsw_info(self._graph(), n, n + 1), "Hnsw.info")
        return int(n[0]), int(n[1])

    @property
    def n_nodes(self) -> int:
        """Nodes inserted (the graph covers rows [0, n_nodes))."""
        return self._info()[0]

    @property
    def memory_bytes(self) -> int:
        """Bytes of links and bookkeeping (a loaded image's size included; no vectors)."""
        return self._info()[1]

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def m(self) -> int:
        return self._m

    @property
    def ef_construction(self) -> int:
        return self._efc

    @property
    def seed(self) -> int:
        return self._seed

    def serialized_size(self) -> int:
        """Exact size in bytes of the checkpoint image of the graph as it is now."""
        size = ffi.new("size_t *")
        _check(lib.vdb_hnsw_serialized_size(self._graph(), size), "Hnsw.serialized_size")
        return int(size[0])

    def serialize_into(self, buffer) -> None:
        """Writes the image into ``buffer``: writable, 8-byte aligned, of exactly
        ``serialized_size()`` bytes (e.g. an mmap of a file of that size)."""
        ptr = self._graph()
        cbuf, size = _writable_buffer(buffer, "buffer")
        try:
            expected = self.serialized_size()
            if size != expected:
                raise InvalidArgumentError(
                    f"buffer: holds {size} bytes, the image needs exactly {expected}")
            _check(lib.vdb_hnsw_serialize(ptr, cbuf, size), "Hnsw.serialize_into")
        finally:
            ffi.release(cbuf)


def _image_info(cbuf, size: int) -> dict:
    dim = ffi.new("size_t[2]")
    metric = ffi.new("int *")
    params = ffi.new("vdb_hnsw_params *")
    _check(lib.vdb_hnsw_image_info(cbuf, size, dim, metric, params, dim + 1), "hnsw_image_info")
    return {"dim": int(dim[0]), "metric": _METRIC_NAMES.get(metric[0], str(metric[0])),
            "m": int(params.m), "ef_construction": int(params.ef_construction),
            "seed": int(params.seed), "n_nodes": int(dim[1])}


def hnsw_image_info(buffer) -> dict:
    """dim, metric, m, ef_construction, seed and n_nodes of a checkpoint image (header checks
    only); raises CorruptionError / FormatVersionError."""
    cbuf = _readable_buffer(buffer, "buffer")
    try:
        return _image_info(cbuf, len(cbuf))
    finally:
        ffi.release(cbuf)


def hnsw_verify(buffer) -> bool:
    """True iff the image's header and body checksums match (reads the whole buffer).
    A newer format version raises FormatVersionError."""
    cbuf = _readable_buffer(buffer, "buffer")
    try:
        rc = lib.vdb_hnsw_verify(cbuf, len(cbuf))
    finally:
        ffi.release(cbuf)
    if rc == lib.VDB_ERR_CORRUPT:
        return False
    if rc:
        _check(rc, "hnsw_verify")
    return True


# -- training and quantization (csrc/kmeans.c, sq.c, pq.c, quant.c, rescore.c, ivf.c) ---------

QUANT_KINDS: Dict[str, int] = {"sq8": lib.VDB_QUANT_SQ8, "pq": lib.VDB_QUANT_PQ}
_FLOAT_ROWS_T = ffi.typeof("vdb_rows *")
_CODE_ROWS_T = ffi.typeof("vdb_code_rows *")
_U8 = np.dtype(np.uint8)
_U32 = np.dtype(np.uint32)


def _uint8_matrix(a: object, name: str, columns: int) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != _U8 or a.ndim != 2 \
            or not a.flags.c_contiguous or a.shape[1] != columns:
        raise InvalidArgumentError(
            f"{name}: expected a 2-D C-contiguous uint8 array of {columns} columns, "
            f"got {_describe(a)}")
    return a


def _out(shape, dtype):
    """(numpy array, writable ffi buffer) of a fresh output array."""
    a = np.empty(shape, dtype=dtype)
    ctype = {np.dtype(np.float32): "float[]", np.dtype(np.int64): "int64_t[]",
             _U32: "uint32_t[]", _U8: "uint8_t[]"}[np.dtype(dtype)]
    return a, ffi.from_buffer(ctype, a, require_writable=True)


def kmeans(x: np.ndarray, k: int, *, iters: int = 25, seed: int = 0, n_threads: int = 0,
           simd: Optional[str] = None) -> Tuple[np.ndarray, float]:
    """(centroids float32 [k, dim], mean squared distance to the nearest centroid) of k-means
    over the rows of ``x`` (float32 [n, dim], 1 <= k <= n), deterministic under ``seed``.

        >>> X = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=np.float32)
        >>> c, _ = kmeans(X, 2, seed=1)
        >>> sorted(c[:, 0].tolist())
        [0.0, 10.0]
    """
    level = _simd_level(simd)
    _float_matrix(x, "x")
    n, dim = x.shape
    k = _count(k, "k", 1, max(n, 1))
    iters = _count(iters, "iters", 0, 1 << 20)
    seed = _count(seed, "seed", 0, 2**64 - 1)
    n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)
    centroids, cbuf = _out((k, dim), np.float32)
    inertia = ffi.new("float *")
    rc = lib.vdb_kmeans(level, ffi.from_buffer("float[]", x), n, dim, k, iters, seed,
                        n_threads, cbuf, inertia)
    if rc:
        _check(rc, "kmeans")
    return centroids, float(inertia[0])


def kmeans_assign(centroids: np.ndarray, x: np.ndarray, *, n_threads: int = 0,
                  simd: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(nearest centroid uint32 [n], its squared L2 distance float32 [n]) of each row of x."""
    level = _simd_level(simd)
    _float_matrix(centroids, "centroids")
    _float_matrix(x, "x")
    k, dim = centroids.shape
    if k == 0 or dim == 0:
        raise InvalidArgumentError(f"centroids: expected at least one centroid of dim >= 1, "
                                   f"got shape {centroids.shape}")
    if x.shape[1] != dim:
        raise InvalidArgumentError(f"x: dim {x.shape[1]} does not match the centroids' {dim}")
    n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)
    n = x.shape[0]
    assign, abuf = _out(n, np.uint32)
    dist, dbuf = _out(n, np.float32)
    rc = lib.vdb_kmeans_assign(level, ffi.from_buffer("float[]", centroids), k, dim,
                               ffi.from_buffer("float[]", x), n, n_threads, abuf, dbuf)
    if rc:
        _check(rc, "kmeans_assign")
    return assign, dist


def sq8_train(x: np.ndarray) -> np.ndarray:
    """SQ8 parameters (float32 [2 * dim]: per-dimension min, then step) of the rows of x."""
    _float_matrix(x, "x")
    n, dim = x.shape
    if n == 0 or dim == 0:
        raise InvalidArgumentError(f"x: expected at least one row and one column, got {x.shape}")
    params, pbuf = _out(2 * dim, np.float32)
    _check(lib.vdb_sq8_train(ffi.from_buffer("float[]", x), n, dim, pbuf), "sq8_train")
    return params


def pq_train(x: np.ndarray, m: int, *, iters: int = 25, seed: int = 0, n_threads: int = 0,
             simd: Optional[str] = None) -> np.ndarray:
    """PQ codebooks (float32 [m * 256 * dim / m]) of the rows of x (n >= 256, m | dim)."""
    level = _simd_level(simd)
    _float_matrix(x, "x")
    n, dim = x.shape
    m = _count(m, "m", 1, max(dim, 1))
    if dim % m:
        raise InvalidArgumentError(f"m: {m} does not divide dim {dim}")
    if n < 256:
        raise InvalidArgumentError(f"x: PQ training needs at least 256 rows, got {n}")
    iters = _count(iters, "iters", 0, 1 << 20)
    seed = _count(seed, "seed", 0, 2**64 - 1)
    n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)
    params, pbuf = _out(256 * dim, np.float32)
    rc = lib.vdb_pq_train(level, ffi.from_buffer("float[]", x), n, dim, m, iters, seed,
                          n_threads, pbuf)
    if rc:
        _check(rc, "pq_train")
    return params


class Quantizer:
    """A trained SQ8 or PQ quantizer (``vdb_quantizer``): encodes float32 rows into code
    rows and scores code rows against queries (ADC). ``params`` come from ``sq8_train`` /
    ``pq_train``; the object keeps them alive.

        >>> X = np.random.default_rng(0).random((50, 4), dtype=np.float32)
        >>> q = Quantizer("sq8", "ip", 4, sq8_train(X))
        >>> q.encode(X).shape
        (50, 4)
    """

    __slots__ = ("kind", "metric", "dim", "m", "params", "code_size", "ptr", "_pbuf")

    def __init__(self, kind: str, metric: str, dim: int, params: np.ndarray,
                 m: int = 0) -> None:
        if kind not in QUANT_KINDS:
            raise InvalidArgumentError(f"kind: expected one of {', '.join(QUANT_KINDS)}, "
                                       f"got {kind!r}")
        mt = _metric(metric)
        dim = _count(dim, "dim", 1)
        m = _count(m, "m", 0, dim)
        if kind == "pq" and metric == "cosine":
            raise InvalidArgumentError("metric: PQ supports 'l2' and 'ip' only (a cosine "
                                       "collection stores unit vectors and uses 'ip')")
        if kind == "pq" and (m < 1 or dim % m):
            raise InvalidArgumentError(f"m: expected a divisor of dim {dim}, got {m}")
        expect = 2 * dim if kind == "sq8" else 256 * dim
        if not isinstance(params, np.ndarray) or params.dtype != _F32 or params.ndim != 1 \
                or not params.flags.c_contiguous or params.shape[0] != expect:
            raise InvalidArgumentError(f"params: expected a 1-D C-contiguous float32 array of "
                                       f"{expect} values, got {_describe(params)}")
        self.kind, self.metric, self.dim, self.m, self.params = kind, metric, dim, m, params
        self._pbuf = ffi.from_buffer("float[]", params)
        self.ptr = ffi.new("vdb_quantizer *", (QUANT_KINDS[kind], mt, dim, m, self._pbuf))
        size = ffi.new("size_t *")
        _check(lib.vdb_quantizer_code_size(self.ptr, size), "Quantizer")
        self.code_size = int(size[0])

    def __repr__(self) -> str:
        m = f", m={self.m}" if self.kind == "pq" else ""
        return f"Quantizer({self.kind!r}, {self.metric!r}, dim={self.dim}{m})"

    def encode(self, x: np.ndarray, *, n_threads: int = 0, simd: Optional[str] = None,
               errors: bool = False):
        """Code rows (uint8 [n, code_size]) of the rows of x; with errors=True also each
        row's squared L2 distance to its decoded code (float32 [n])."""
        level = _simd_level(simd)
        _float_matrix(x, "x")
        if x.shape[1] != self.dim:
            raise InvalidArgumentError(f"x: dim {x.shape[1]} does not match the quantizer's "
                                       f"{self.dim}")
        n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)
        n = x.shape[0]
        codes, cbuf = _out((n, self.code_size), np.uint8)
        err, ebuf = _out(n, np.float32) if errors else (None, ffi.NULL)
        rc = lib.vdb_quantizer_encode(level, self.ptr, ffi.from_buffer("float[]", x), n,
                                      n_threads, cbuf, ebuf)
        if rc:
            _check(rc, "Quantizer.encode")
        return (codes, err) if errors else codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The float32 rows [n, dim] the code rows stand for."""
        _uint8_matrix(codes, "codes", self.code_size)
        n = codes.shape[0]
        out, obuf = _out((n, self.dim), np.float32)
        _check(lib.vdb_quantizer_decode(self.ptr, ffi.from_buffer("uint8_t[]", codes), n, obuf),
               "Quantizer.decode")
        return out

    def distances(self, query: np.ndarray, codes: np.ndarray, *,
                  simd: Optional[str] = None) -> np.ndarray:
        """ADC distances (float32 [n]) from query (float32 [dim]) to each code row."""
        level = _simd_level(simd)
        if not isinstance(query, np.ndarray) or query.dtype != _F32 or query.ndim != 1 \
                or not query.flags.c_contiguous or query.shape[0] != self.dim:
            raise InvalidArgumentError(f"query: expected a 1-D C-contiguous float32 array of "
                                       f"{self.dim} values, got {_describe(query)}")
        _uint8_matrix(codes, "codes", self.code_size)
        n = codes.shape[0]
        out, obuf = _out(n, np.float32)
        rc = lib.vdb_quantizer_distances(level, self.ptr, ffi.from_buffer("float[]", query),
                                         ffi.from_buffer("uint8_t[]", codes), n, obuf)
        if rc:
            _check(rc, "Quantizer.distances")
        return out


def code_rows(segments: Sequence[np.ndarray], shift: int, n_rows: int,
              code_size: int) -> Rows:
    """The code rows [0, n_rows) of ``segments`` (uint8 [rows, code_size] arrays, row r in
    ``segments[r >> shift]``), checked once: ``Hnsw.search_codes`` takes the result in place
    of the segment list, so a caller searching the same rows again skips the checks."""
    n_rows = _count(n_rows, "n_rows", 0, 2**32 - 2)
    shift = _count(shift, "code_shift", 0, 31)
    needed, ptrs = _segment_pointers(
        segments, shift, n_rows, "code_segments", "uint8_t[]",
        lambda seg, i: _uint8_matrix(seg, f"code_segments[{i}]", code_size))
    array = ffi.new("const uint8_t *[]", ptrs) if ptrs else ffi.NULL
    ptr = ffi.new("vdb_code_rows *", (array, needed, shift, n_rows, code_size))
    return Rows(ptr, array, ptrs)


def float_rows(segments: Sequence[np.ndarray], segment_shift: int, n_rows: int,
               dim: int) -> Rows:
    """The float rows [0, n_rows) of ``segments`` (as ``flat_search`` takes them), checked
    once: ``rescore`` takes the result in place of the segment list."""
    return _rows(segments, _count(segment_shift, "segment_shift", 0, 63),
                 _count(n_rows, "n_rows", 0, 2**63 - 1), dim, "segments")


def rescore(segments: Sequence[np.ndarray], segment_shift: int, n_rows: int,
            queries: np.ndarray, cand: np.ndarray, k: int, metric: str, *, n_threads: int = 0,
            simd: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each query among its candidate rows ``cand`` (int64 [nq, c]; -1 and
    rows >= n_rows are skipped): (rows int64 [nq, k], distances float32 [nq, k]) with the
    distances flat_search computes. ``segments`` may be a ``float_rows`` result (then
    segment_shift and n_rows are ignored)."""
    level = _simd_level(simd)
    mt = _metric(metric)
    _float_matrix(queries, "queries")
    nq, dim = queries.shape
    if not isinstance(cand, np.ndarray) or cand.dtype != np.int64 or cand.ndim != 2 \
            or not cand.flags.c_contiguous or cand.shape[0] != nq:
        raise InvalidArgumentError(f"cand: expected a C-contiguous int64 array of {nq} rows, "
                                   f"got {_describe(cand)}")
    k = _count(k, "k")
    n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)
    if isinstance(segments, Rows) and ffi.typeof(segments.ptr) is _FLOAT_ROWS_T:
        rows = segments
        if rows.ptr.dim != dim:
            raise InvalidArgumentError(f"queries: dim {dim} does not match the rows' "
                                       f"{rows.ptr.dim}")
    else:
        rows = _rows(segments, _count(segment_shift, "segment_shift", 0, 63),
                     _count(n_rows, "n_rows", 0, 2**63 - 1), dim, "queries")
    out_rows, rbuf = _out((nq, k), np.int64)
    out_dist, dbuf = _out((nq, k), np.float32)
    rc = lib.vdb_rescore(level, mt, rows.ptr, ffi.from_buffer("float[]", queries), nq,
                         ffi.from_buffer("int64_t[]", cand), cand.shape[1], k, n_threads,
                         rbuf, dbuf)
    if rc:
        _check(rc, "rescore")
    return out_rows, out_dist


class IvfLists:
    """A snapshot of the inverted lists of an IVF-PQ index (``vdb_ivf_lists``): coarse
    centroids (float32 [nlist, dim]) and, per list i, the first ``sizes[i]`` entries of its
    row numbers (uint32 [>= sizes[i]]), of the PQ codes of the rows' residuals (uint8
    [>= sizes[i], code_size]) and, optionally, of the squared norms |x^|^2 of the decoded
    rows x^ = centroid + decoded residual (``norms``: float32 [>= sizes[i]]; None for an
    empty list). With norms an L2 search builds one ADC table per query instead of one per
    probed list (the distances then equal the ADC distances up to float rounding); under IP
    they are ignored. Arrays may have spare capacity past their size, which a writer may fill
    while searches run on the snapshot. Build one per change and share it between queries;
    it keeps every array alive."""

    __slots__ = ("ptr", "nlist", "dim", "_keep")

    def __init__(self, centroids: np.ndarray, rows: Sequence[np.ndarray],
                 codes: Sequence[np.ndarray], sizes: Sequence[int], code_size: int,
                 norms: Optional[Sequence[Optional[np.ndarray]]] = None) -> None:
        _float_matrix(centroids, "centroids")
        nlist, self.dim = centroids.shape
        if not len(rows) == len(codes) == len(sizes) == nlist:
            raise InvalidArgumentError(f"rows, codes, sizes: expected {nlist} lists each, got "
                                       f"{len(rows)}, {len(codes)} and {len(sizes)}")
        if norms is not None and len(norms) != nlist:
            raise InvalidArgumentError(f"norms: expected {nlist} lists, got {len(norms)}")
        size_arr = np.array(sizes, dtype=np.uintp).reshape(nlist)
        row_ptrs, code_ptrs, norm_ptrs = [], [], []
        for i in range(nlist):
            r, c, n = rows[i], codes[i], int(size_arr[i])
            if not isinstance(r, np.ndarray) or r.dtype != _U32 or r.ndim != 1 \
                    or not r.flags.c_contiguous or r.shape[0] < n:
                raise InvalidArgumentError(f"rows[{i}]: expected a 1-D C-contiguous uint32 "
                                           f"array of at least {n} entries, got {_describe(r)}")
            _uint8_matrix(c, f"codes[{i}]", code_size)
            if c.shape[0] < n:
                raise InvalidArgumentError(f"codes[{i}]: {c.shape[0]} code rows, {n} needed")
            row_ptrs.append(ffi.from_buffer("uint32_t[]", r))
            code_ptrs.append(ffi.from_buffer("uint8_t[]", c))
            if norms is None:
                continue
            v = norms[i]
            if v is None and n == 0:
                norm_ptrs.append(ffi.NULL)
                continue
            if not isinstance(v, np.ndarray) or v.dtype != _F32 or v.ndim != 1 \
                    or not v.flags.c_contiguous or v.shape[0] < n:
                raise InvalidArgumentError(f"norms[{i}]: expected a 1-D C-contiguous float32 "
                                           f"array of at least {n} entries, got {_describe(v)}")
            norm_ptrs.append(ffi.from_buffer("float[]", v))
        cen = ffi.from_buffer("float[]", centroids)
        size_buf = ffi.from_buffer("size_t[]", size_arr)
        row_arr = ffi.new("const uint32_t *[]", row_ptrs) if nlist else ffi.NULL
        code_arr = ffi.new("const uint8_t *[]", code_ptrs) if nlist else ffi.NULL
        norm_arr = ffi.new("const float *[]", norm_ptrs) if norms is not None and nlist \
            else ffi.NULL
        self.nlist = nlist
        self.ptr = ffi.new("vdb_ivf_lists *",
                           (nlist, cen, size_buf, row_arr, code_arr, norm_arr))
        self._keep = (centroids, list(rows), list(codes),
                      None if norms is None else list(norms), size_arr, row_ptrs, code_ptrs,
                      norm_ptrs, cen, size_buf, row_arr, code_arr, norm_arr)


def ivfpq_search(quantizer: Quantizer, lists: IvfLists, n_rows: int, queries: np.ndarray,
                 k: int, nprobe: int, *, allow: Optional[np.ndarray] = None,
                 deny: Optional[np.ndarray] = None, n_threads: int = 0,
                 stats: Optional[dict] = None,
                 simd: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """k best rows of each query by ADC distance over the ``nprobe`` closest lists:
    (rows int64 [nq, k], ADC distances float32 [nq, k]); rescore them with ``rescore``."""
    level = _simd_level(simd)
    if not isinstance(quantizer, Quantizer) or quantizer.kind != "pq":
        raise InvalidArgumentError(f"quantizer: expected a PQ Quantizer, got {quantizer!r}")
    if not isinstance(lists, IvfLists):
        raise InvalidArgumentError(f"lists: expected IvfLists, got {type(lists).__name__}")
    _float_matrix(queries, "queries")
    nq, dim = queries.shape
    if dim != quantizer.dim or dim != lists.dim:
        raise InvalidArgumentError(f"queries: dim {dim} does not match the index's "
                                   f"{quantizer.dim}")
    k = _count(k, "k")
    nprobe = _count(nprobe, "nprobe", 1)
    n_rows = _count(n_rows, "n_rows", 0, 2**32 - 1)
    n_threads = _count(n_threads, "n_threads", 0, 2**31 - 1)
    allow_p = _bitset(allow, "allow", n_rows)
    deny_p = _bitset(deny, "deny", n_rows)
    counts = _stats(stats)
    out_rows, rbuf = _out((nq, k), np.int64)
    out_dist, dbuf = _out((nq, k), np.float32)
    rc = lib.vdb_ivfpq_search(level, quantizer.ptr, lists.ptr, n_rows,
                              ffi.from_buffer("float[]", queries), nq, k, nprobe, allow_p,
                              deny_p, n_threads, rbuf, dbuf, counts)
    if rc:
        _check(rc, "ivfpq_search")
    if stats is not None:
        _add_stats(stats, counts)
    return out_rows, out_dist


__all__ = ["SIMD", "SIMD_LEVELS", "METRICS", "simd_supported",
           "distances", "flat_search", "bitset_count", "Hnsw", "hnsw_image_info", "hnsw_verify",
           "QUANT_KINDS", "kmeans", "kmeans_assign", "sq8_train", "pq_train", "Quantizer",
           "Rows", "code_rows", "float_rows", "rescore", "IvfLists", "ivfpq_search"]
