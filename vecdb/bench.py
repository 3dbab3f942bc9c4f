"""``vecdb bench``: a quick self-check of an installation, not a benchmark suite (those live in
benchmarks/). It builds a temporary HNSW collection of random clustered vectors and reports
the add rate, single-query latency (p50, p99) and throughput, batch throughput, recall@k
against an exact numpy search, and the throughput of that numpy brute force (matrix products
over blocks of queries, its best case) for comparison with vecdb's batch throughput.
Below a few thousand rows the planner scans exactly instead of walking the graph; the
figures say which plan the queries got.

Invariants:
 1. Everything happens in a temporary directory that is removed afterwards, whatever
    happens; the user's databases are never touched.
 2. The recall's ground truth is an exact float32 search by numpy over the same rows under
    the same metric (vecdb stores cosine rows unit-normalized, so the truth searches unit
    rows too); ids are row numbers, so hits compare directly.
 3. Only searching is timed: numpy's excludes the one-off normalization of the rows, and
    vecdb's queries read no payloads (``include=()``).

    >>> r = run(n=2000, dim=16, queries=20)  # doctest: +SKIP
    >>> r["recall_at_k"] > 0.9  # doctest: +SKIP
    True
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np

from .database import open as open_db
from .io.progress import progress_bar
from .types import Metric

ADD_BATCH = 5_000
NUMPY_BLOCK = 256


def clustered(n: int, n_queries: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n rows and n_queries queries drawn from one Gaussian mixture (float32)."""
    rng = np.random.default_rng(seed)
    n_centers = max(1, min(100, n // 200))
    centers = rng.standard_normal((n_centers, dim)).astype(np.float32) * 2
    labels = rng.integers(0, n_centers, size=n + n_queries)
    points = centers[labels] + rng.standard_normal((n + n_queries, dim)).astype(np.float32)
    return np.ascontiguousarray(points[:n]), np.ascontiguousarray(points[n:])


def _unit(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    norms[norms == 0] = 1
    return (X / norms).astype(np.float32)


def numpy_search(X: np.ndarray, Q: np.ndarray, k: int,
                 metric: str) -> tuple[np.ndarray, float]:
    """(rows [nq, k] of the exact nearest rows best first, seconds spent searching) by numpy
    brute force at its best: one matrix product per block of queries (a loop of single
    matrix-vector products is far slower, BLAS threads waking up for every call)."""
    if metric == "cosine":
        X, Q = _unit(X), _unit(Q)
    half_norms = 0.5 * np.einsum("ij,ij->i", X, X) if metric == "l2" else None
    k = min(k, len(X))
    out = np.empty((len(Q), k), dtype=np.int64)
    t0 = time.perf_counter()
    for s in range(0, len(Q), NUMPY_BLOCK):
        scores = Q[s:s + NUMPY_BLOCK] @ X.T  # larger is closer (l2: minus half the norm)
        if half_norms is not None:
            scores -= half_norms
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[s:s + NUMPY_BLOCK] = np.take_along_axis(top, order, axis=1)
    return out, time.perf_counter() - t0


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true k nearest rows that were found."""
    k = truth.shape[1]
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / k
                          for f, t in zip(found, truth)]))


def run(n: int = 20_000, dim: int = 128, k: int = 10, queries: int = 200,
        metric: Metric = "cosine", seed: int = 0, progress: Any = False) -> dict[str, Any]:
    """Runs the self-check (module docstring) and returns its figures.

    >>> run(n=2000, dim=16, queries=20)["recall_at_k"]  # doctest: +SKIP
    0.995
    """
    X, Q = clustered(n, queries, dim, seed)
    found = np.full((queries, min(k, n)), -1, dtype=np.int64)
    latency = np.empty(queries)
    with tempfile.TemporaryDirectory(prefix="vecdb-bench-") as tmp, \
            open_db(tmp, durability="off") as db:
        col = db.create_collection("bench", dim=dim, metric=metric, text_index=False)
        t0 = time.perf_counter()
        with progress_bar(progress, n, "add + index", "rows") as bar:
            for s in range(0, n, ADD_BATCH):
                e = min(n, s + ADD_BATCH)
                col.add(ids=list(range(s, e)), vectors=X[s:e])
                bar.update(e - s)
        add_seconds = time.perf_counter() - t0
        # warm-up (first touch of the pages), and the plan the queries get
        plan = col.query(Q[0], k=k, include=(), explain=True).explain["plan"]
        for i, q in enumerate(Q):
            t = time.perf_counter()
            ids = col.query(q, k=k, include=()).ids
            latency[i] = time.perf_counter() - t
            found[i, :len(ids)] = ids
        t = time.perf_counter()
        col.query(Q, k=k, include=())
        batch_seconds = time.perf_counter() - t
        index = col.index.to_dict()
    truth, numpy_seconds = numpy_search(X, Q, k, metric)
    batch_qps = queries / batch_seconds
    numpy_qps = queries / numpy_seconds
    return {
        "n": n, "dim": dim, "k": k, "queries": queries, "metric": metric, "index": index,
        "plan": plan,
        "add_seconds": add_seconds, "add_rows_per_s": n / add_seconds,
        "query_p50_ms": float(np.percentile(latency, 50) * 1e3),
        "query_p99_ms": float(np.percentile(latency, 99) * 1e3),
        "query_qps": queries / latency.sum(), "batch_qps": batch_qps,
        "recall_at_k": recall(found, truth),
        "numpy_qps": numpy_qps, "speedup_vs_numpy": batch_qps / numpy_qps,
    }
