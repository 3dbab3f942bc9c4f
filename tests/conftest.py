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
