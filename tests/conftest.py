"""Helpers shared by several test files: reference (numpy float64) search and test data.

Import them directly (``from conftest import exact_topk``); pytest puts tests/ on sys.path.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Optional, Tuple

import pytest

import numpy as np


def random_vectors(n: int, dim: int, *, seed: int = 0, kind: str = "gaussian") -> np.ndarray:
    """A C-contiguous float32 [n, dim] array.

    ``kind="gaussian"``: standard normal entries. ``kind="int"``: small integers in [-3, 3],
    so L2 and inner-product distances are exact in float32 (no rounding) and ties are common,
    which makes exact comparisons, tie-breaking included, meaningful.
    """
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((n, dim), dtype=np.float32)
    if kind == "int":
        return rng.integers(-3, 4, size=(n, dim)).astype(np.float32)
    raise ValueError(f"kind: unknown {kind!r}")


def clustered_vectors(n: int, dim: int, *, n_queries: int = 0, clusters: int = 50,
                      seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """A Gaussian mixture (float32 [n, dim]) and n_queries more points drawn from it, the
    kind of data a graph index must handle well (rows of one cluster are near each other)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32) * 3
    labels = rng.integers(0, clusters, size=n + n_queries)
    points = centers[labels] + rng.standard_normal((n + n_queries, dim)).astype(np.float32)
    return np.ascontiguousarray(points[:n]), np.ascontiguousarray(points[n:])


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each truth row (of k) that found holds."""
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k].tolist()) & set(t.tolist())) / k
                          for f, t in zip(found, truth)]))


def exact_distances(X: np.ndarray, Q: np.ndarray, metric: str) -> np.ndarray:
    """float64 [nq, n] distances with vecdb's conventions (smaller is closer)."""
    X = np.asarray(X, dtype=np.float64)
    Q = np.atleast_2d(np.asarray(Q, dtype=np.float64))
    dots = Q @ X.T
    if metric == "l2":  # expanded in float64: exact for integer data, ~1e-16 relative else
        sq = (Q * Q).sum(axis=1)[:, None] + (X * X).sum(axis=1)[None, :] - 2.0 * dots
        return np.maximum(sq, 0.0)
    if metric == "ip":
        return -dots
    if metric == "cosine":
        qn = np.linalg.norm(Q, axis=1)[:, None]
        xn = np.linalg.norm(X, axis=1)[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            d = 1.0 - dots / (qn * xn)
        d[(qn == 0) | (xn == 0)] = 1.0
        return d
    raise ValueError(f"metric: unknown {metric!r}")


def exact_topk(X: np.ndarray, Q: np.ndarray, k: int, metric: str,
               mask: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Exact top-k in float64: (rows int64 [nq, k], distances float64 [nq, k]).

    Best first, ties to the smaller row; rows outside ``mask`` (bool [n]) are skipped; unused
    slots hold row -1 and distance +inf (the contract of vecdb's flat search).
    """
    D = exact_distances(X, Q, metric)
    nq, n = D.shape
    rows = np.full((nq, k), -1, dtype=np.int64)
    dist = np.full((nq, k), np.inf)
    candidates = np.arange(n) if mask is None else np.flatnonzero(mask)
    for i in range(nq):
        d = D[i, candidates]
        order = np.lexsort((candidates, d))[:k]  # by distance, then row
        rows[i, : order.size] = candidates[order]
        dist[i, : order.size] = d[order]
    return rows, dist


def bits_from_mask(mask: np.ndarray, *, extra_words: int = 0) -> np.ndarray:
    """The uint64 bitset of a bool mask (bit r = word r // 64, bit r % 64)."""
    mask = np.asarray(mask, dtype=bool)
    words = (mask.size + 63) // 64 + extra_words
    padded = np.zeros(words * 64, dtype=bool)
    padded[: mask.size] = mask
    return np.packbits(padded, bitorder="little").view("<u8").astype(np.uint64)


def during(main, step, *, threads: int = 3) -> None:
    """Runs step(rng) in a loop on `threads` threads while main() runs on this one; raises the
    first exception a step raised (each thread stops at its first)."""
    errors: list = []
    stop = threading.Event()

    def loop(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            try:
                step(rng)
            except BaseException as e:  # re-raised below, on the test's thread
                errors.append(e)
                return

    workers = [threading.Thread(target=loop, args=(s,)) for s in range(threads)]
    for w in workers:
        w.start()
    try:
        main()
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
    if errors:
        raise errors[0]


# -- fixtures --------------------------------------------------------------------------------


def result_ids(results) -> np.ndarray:
    """int [nq, k] ids of a list of Results (one per query)."""
    return np.array([r.ids.tolist() for r in results])


def add_in_batches(col, X, start, stop, step=None, metadatas=None) -> None:
    """Adds rows [start, stop) of X with ids start.. in batches of step (default: one)."""
    step = step or (stop - start)
    for s in range(start, stop, step):
        e = min(stop, s + step)
        col.add(ids=list(range(s, e)), vectors=X[s:e],
                metadatas=None if metadatas is None else metadatas[s:e])


def flip_bytes(path, offset, count=16) -> None:
    """Damages a file: inverts count bytes at offset."""
    with open(path, "r+b") as f:
        f.seek(offset)
        data = bytearray(f.read(count))
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))

def text_index_state(db, col):
    """(postings and corpus statistics in LMDB, the same recomputed from the stored records)
    of a collection: {"postings": {term: [(row, tf, doc length), ...]}, "stats": (docs,
    terms)} each, for tests that check the text index stays in step with the rows."""
    from vecdb.storage import keys, postings, records
    from vecdb.textindex import counts_for

    env, prefix = db._env, col._prefix
    actual, expected = {}, {}
    with env.read() as txn:
        with txn.cursor(db=env.dbs["postings"]) as cur:
            if cur.set_range(prefix):
                for key, value in cur.iternext(keys=True, values=True):
                    if not key.startswith(prefix):
                        break
                    actual.setdefault(key[len(prefix):].decode(), []).append(
                        postings.POSTING.unpack(value))
        stats = postings.TextStats.load(txn, env.dbs["meta"], prefix)
        docs = terms = 0
        with txn.cursor(db=env.dbs["rows"]) as cur:
            if cur.set_range(prefix):
                for key, record in cur.iternext(keys=True, values=True):
                    if not key.startswith(prefix):
                        break
                    document = records.decode(record)[2]
                    counts = counts_for(col.text_index, document) \
                        if document and col.text_index else {}
                    length = sum(counts.values())
                    merged = {}
                    for term, tf in counts.items():
                        name = postings.term_key(prefix, term)[len(prefix):].decode()
                        merged[name] = merged.get(name, 0) + tf
                    for name, tf in merged.items():
                        expected.setdefault(name, []).append((keys.key_row(key), tf, length))
                    docs, terms = docs + (length > 0), terms + length
    for lists in (actual, expected):
        for name in lists:
            lists[name].sort()
    return ({"postings": actual, "stats": (stats.docs, stats.terms)},
            {"postings": expected, "stats": (docs, terms)})


@pytest.fixture
def db_path(tmp_path):
    """Path of a database directory that does not exist yet."""
    return tmp_path / "test.vdb"


@pytest.fixture
def db(db_path):
    """A writable database in a fresh directory, closed after the test."""
    import vecdb

    database = vecdb.open(db_path)
    yield database
    database.close()


# -- subprocesses ----------------------------------------------------------------------------

VECDB_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Child:
    """A Python child running script (with this checkout importable): JSON/text lines over its
    stdin/stdout with bounded waits; close() for a clean end, kill() for SIGKILL."""

    def __init__(self, script, *args):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (VECDB_ROOT, os.environ.get("PYTHONPATH")) if p))
        self.proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0, env=env)
        self._buf = b""

    def send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())

    def line(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            ready = select.select([self.proc.stdout], [], [],
                                  max(0.0, deadline - time.monotonic()))[0]
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else None
            if not chunk:
                self.close(kill=True)
                raise AssertionError(f"child gave no line within {timeout} s (eof={chunk == b''}); "
                                     f"stderr:\n{self.proc.stderr.read().decode()}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def close(self, kill=False, timeout=30.0):
        """Closes stdin (the child's cue to finish), waits, returns (rc, stderr)."""
        if kill and self.proc.poll() is None:
            self.proc.kill()
        if not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        err = self.proc.stderr.read().decode()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode, err

    def kill(self):
        """SIGKILL, reap, and return every stdout line written before death."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        rest = self._buf + self.proc.stdout.read()
        self._buf = b""
        self.stderr = self.proc.stderr.read().decode()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()
        return rest.decode().split()


def clustered_vectors_with_labels(n: int, dim: int, *, n_queries: int = 0, clusters: int = 50,
                                  seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """clustered_vectors(...) and the cluster label (int64 [n]) of each of the n points."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32) * 3
    labels = rng.integers(0, clusters, size=n + n_queries)
    points = centers[labels] + rng.standard_normal((n + n_queries, dim)).astype(np.float32)
    return (np.ascontiguousarray(points[:n]), np.ascontiguousarray(points[n:]),
            labels[:n].astype(np.int64))


# -- filters: a plain-Python reference of the where-language ---------------------------------
#
# An independent reading of the module docstring of vecdb/query/filters.py (rules 1-11); it
# imports nothing from vecdb. It evaluates valid filters only: checking them is vecdb's job.


def _plain(v):
    """Rule 1: numpy scalars are their Python values."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _kind(v) -> Optional[str]:
    """Rule 2: the type class of a single value; None for None and lists (no class)."""
    v = _plain(v)
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "str"
    return None


def _ref_eq(value, v) -> bool:
    """Rule 3: value (a row's) is a single value equal to v. Python compares int with float
    exactly (2**53 + 1 != 2.0**53), which is rule 2's numeric equality."""
    kind = _kind(value)
    return kind is not None and kind == _kind(v) and _plain(value) == _plain(v)


def _ref_ordered(value, op: str, v) -> bool:
    """Rule 4: same class (number or str) and the comparison holds."""
    kind = _kind(value)
    if kind not in ("number", "str") or kind != _kind(v):
        return False
    a, b = _plain(value), _plain(v)
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _ref_operator(has: bool, value, op: str, arg) -> bool:
    if op == "$exists":
        return has == bool(arg)                                  # rule 7
    if not has:
        return False                                             # rule 8
    if op == "$eq":
        return _ref_eq(value, arg)                               # rule 3
    if op == "$ne":
        return not _ref_eq(value, arg)                           # rule 5
    if op == "$in":
        return any(_ref_eq(value, a) for a in arg)               # rule 3
    if op == "$nin":
        return not any(_ref_eq(value, a) for a in arg)           # rule 5
    if op == "$contains":
        return isinstance(value, list) and any(_ref_eq(e, arg) for e in value)  # rule 6
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _ref_ordered(value, op, arg)                      # rule 4
    raise ValueError(f"reference evaluator: unknown operator {op!r}")


def _ref_where(metadata: Optional[dict], where: dict) -> bool:
    """All entries of the dict hold (several fields / several operators: rule 9 and syntax)."""
    for key, spec in where.items():
        if key == "$and":
            ok = all(_ref_where(metadata, f) for f in spec)
        elif key == "$or":
            ok = any(_ref_where(metadata, f) for f in spec)
        elif key == "$not":
            ok = not _ref_where(metadata, spec)
        else:
            has = metadata is not None and key in metadata
            value = metadata[key] if has else None
            ops = spec if isinstance(spec, dict) else {"$eq": spec}
            ok = all(_ref_operator(has, value, op, arg) for op, arg in ops.items())
        if not ok:
            return False
    return True


def _ref_document(document: Optional[str], where_document: dict) -> bool:
    """Rule 10."""
    for op, arg in where_document.items():
        if op == "$contains":
            ok = document is not None and arg in document
        elif op == "$not_contains":
            ok = not (document is not None and arg in document)
        elif op == "$and":
            ok = all(_ref_document(document, f) for f in arg)
        elif op == "$or":
            ok = any(_ref_document(document, f) for f in arg)
        elif op == "$not":
            ok = not _ref_document(document, arg)
        else:
            raise ValueError(f"reference evaluator: unknown document operator {op!r}")
        if not ok:
            return False
    return True


def matches(metadata: Optional[dict], document: Optional[str], where: Optional[dict] = None,
            where_document: Optional[dict] = None) -> bool:
    """True if a row with this metadata (None: no fields) and document matches both filters
    (rule 11: None or {} filters nothing), following vecdb/query/filters.py literally."""
    return ((where is None or _ref_where(metadata, where)) and
            (where_document is None or _ref_document(document, where_document)))


# -- hypothesis strategies for metadata, documents and filters -------------------------------

FILTER_FIELDS = ("a", "b", "c", "tags")
FILTER_INTS = (0, 1, 2, 3, -1, 10, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63))
FILTER_FLOATS = (0.0, -0.0, 1.0, 2.0, 2.5, -1.5, 3.0, 10.0, 0.1, 2.0**53, 9.3e18, 1e300, -1e-300)
FILTER_STRS = ("", "a", "b", "ab", "B", "ba", "é", "a\x00", "2", "True", "\U0001F600", "\uffff")
DOC_ALPHABET = "abAB é"

try:
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    st = None

if st is not None:
    numbers_st = st.one_of(st.sampled_from(FILTER_INTS), st.sampled_from(FILTER_FLOATS),
                           st.integers(-3, 3))
    strs_st = st.sampled_from(FILTER_STRS)
    #: a single value as a filter takes it: str, int, float or bool
    scalar_st = st.one_of(numbers_st, strs_st, st.booleans())
    #: a value $gt/$gte/$lt/$lte take: a number or a str
    ordered_st = st.one_of(numbers_st, strs_st)
    #: a metadata value: a single value, None, or a list of those (no nesting)
    meta_value_st = st.one_of(scalar_st, st.none(),
                              st.lists(st.one_of(scalar_st, st.none()), max_size=4))
    #: a row's metadata: None or a dict over FILTER_FIELDS
    metadata_st = st.one_of(st.none(), st.dictionaries(st.sampled_from(FILTER_FIELDS),
                                                       meta_value_st, max_size=4))
    document_st = st.one_of(st.none(), st.text(DOC_ALPHABET, max_size=8))

    _operator_st = st.one_of(
        st.tuples(st.sampled_from(("$eq", "$ne")), scalar_st),
        st.tuples(st.sampled_from(("$gt", "$gte", "$lt", "$lte")), ordered_st),
        st.tuples(st.sampled_from(("$in", "$nin")), st.lists(scalar_st, max_size=4)),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$contains"), scalar_st),
    )
    #: what a field maps to: a value (implicit $eq) or a non-empty dict of operators
    field_spec_st = st.one_of(scalar_st,
                              st.lists(_operator_st, min_size=1, max_size=3).map(dict))
    _field_filter_st = st.dictionaries(st.sampled_from(FILTER_FIELDS), field_spec_st,
                                       min_size=1, max_size=2)

    def _nest(children):
        return st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda fs: {"$and": fs}),
            st.lists(children, min_size=1, max_size=3).map(lambda fs: {"$or": fs}),
            children.map(lambda f: {"$not": f}),
            # logical keys next to field keys in one dict: all must hold
            st.tuples(children, _field_filter_st).map(lambda p: {**p[1], **p[0]}),
        )

    #: a valid where filter: every operator, $and/$or/$not nested to any depth (often 3+)
    where_st = st.recursive(_field_filter_st, _nest, max_leaves=10)

    _doc_leaf_st = st.builds(lambda op, t: {op: t},
                             st.sampled_from(("$contains", "$not_contains")),
                             st.text(DOC_ALPHABET, min_size=1, max_size=3))

    def _doc_nest(children):
        return st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda fs: {"$and": fs}),
            st.lists(children, min_size=1, max_size=3).map(lambda fs: {"$or": fs}),
            children.map(lambda f: {"$not": f}),
        )

    #: a valid where_document filter
    where_document_st = st.recursive(_doc_leaf_st, _doc_nest, max_leaves=5)


def random_metadata(rng) -> Optional[dict]:
    """A row's metadata drawn like metadata_st, from a numpy Generator (for fixed data sets)."""
    def scalar():
        pool = (FILTER_INTS, FILTER_FLOATS, FILTER_STRS, (True, False), tuple(range(-3, 4)))
        group = pool[int(rng.integers(len(pool)))]
        return group[int(rng.integers(len(group)))]

    def value():
        r = rng.random()
        if r < 0.1:
            return None
        if r < 0.3:
            return [None if rng.random() < 0.1 else scalar()
                    for _ in range(int(rng.integers(0, 5)))]
        return scalar()

    if rng.random() < 0.05:
        return None
    return {f: value() for f in FILTER_FIELDS if rng.random() < 0.6}


def random_document(rng) -> Optional[str]:
    """A document drawn like document_st."""
    if rng.random() < 0.15:
        return None
    n = int(rng.integers(0, 9))
    return "".join(DOC_ALPHABET[int(i)] for i in rng.integers(0, len(DOC_ALPHABET), size=n))


def assert_exact_distances(results, X: np.ndarray, Q: np.ndarray, metric: str,
                           rtol: float = 1e-5, atol: float = 1e-4) -> None:
    """Each hit's distance is the true (float64) distance from its query to X[id] (ids are
    row numbers of X), up to float32 rounding: what a rescored (not ADC) distance must be."""
    for q, res in zip(np.atleast_2d(Q), results):
        ids = np.asarray(res.ids, dtype=np.int64)
        if not len(ids):
            continue
        want = exact_distances(X[ids], q, metric)[0]
        np.testing.assert_allclose(np.asarray(res.distances, dtype=np.float64), want,
                                   rtol=rtol, atol=atol)
