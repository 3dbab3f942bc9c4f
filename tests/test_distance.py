"""Distance kernels (vecdb._native.distances) against a float64 numpy reference, per SIMD level.

Every level the CPU supports is tested (AVX-512 only where available); dims cover scalar tails
(1, 3, 17) and the common widths. Rows are given unaligned as well as aligned.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import exact_distances, random_vectors
from vecdb import _native
from vecdb.errors import InvalidArgumentError

LEVELS = _native.simd_supported()
METRICS = ("l2", "ip", "cosine")
DIMS = (1, 3, 17, 128, 384, 1536)


def tolerance(q: np.ndarray, X: np.ndarray, metric: str) -> np.ndarray:
    """Allowed |error| per row: float32 sums of dim terms drift ~ sqrt(dim) * eps * sum|terms|.

    A kernel that drops or repeats one term of a 1536-dim sum errs by ~sum / 1536, well above
    this bound (1e-6 * sqrt(1536) * sum ~ sum / 25000).
    """
    q64, X64 = q.astype(np.float64), X.astype(np.float64)
    dim = q.shape[0]
    if metric == "l2":
        scale = ((X64 - q64) ** 2).sum(axis=1)
    else:
        scale = np.abs(X64 * q64).sum(axis=1)
        if metric == "cosine":
            norms = np.linalg.norm(X64, axis=1) * np.linalg.norm(q64)
            scale = np.divide(scale, norms, out=np.zeros_like(scale), where=norms > 0)
    return 1e-6 * np.sqrt(dim) * scale + 1e-6


def unaligned_copy(X: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of X whose data starts 4 bytes past a 64-byte boundary."""
    buf = np.empty(X.size + 32, dtype=np.float32)
    start = (-(buf.ctypes.data // 4) % 16 + 1) % 16
    out = buf[start: start + X.size].reshape(X.shape)
    out[...] = X
    assert out.ctypes.data % 64 == 4 and out.flags.c_contiguous
    return out


@pytest.mark.parametrize("simd", LEVELS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dim", DIMS)
def test_matches_float64_reference(simd, metric, dim):
    X = random_vectors(11, dim, seed=dim)  # 11 rows: two 4-row blocks and a 3-row tail
    q = random_vectors(1, dim, seed=dim + 1)[0]
    ref = exact_distances(X, q, metric)[0]
    tol = tolerance(q, X, metric)
    for rows in (X, unaligned_copy(X)):
        got = _native.distances(q, rows, metric, simd=simd)
        assert got.dtype == np.float32 and got.shape == (11,)
        err = np.abs(got.astype(np.float64) - ref)
        assert np.all(err <= tol), f"max error {err.max()} (tolerance {tol[err.argmax()]})"


@pytest.mark.parametrize("simd", LEVELS)
@pytest.mark.parametrize("dim", DIMS)
def test_integer_data_is_exact(simd, dim):
    """Small integers: L2 and dot products are exact in float32 whatever the summation order."""
    X = random_vectors(9, dim, seed=3, kind="int")
    q = random_vectors(1, dim, seed=4, kind="int")[0]
    for metric in ("l2", "ip"):
        got = _native.distances(q, X, metric, simd=simd)
        np.testing.assert_array_equal(got, exact_distances(X, q, metric)[0].astype(np.float32))


@pytest.mark.parametrize("simd", LEVELS)
@pytest.mark.parametrize("dim", (1, 17, 384))
def test_cosine_of_zero_vectors_is_one(simd, dim):
    X = random_vectors(6, dim, seed=5)
    X[2] = 0.0
    q = random_vectors(1, dim, seed=6)[0]
    got = _native.distances(q, X, "cosine", simd=simd)
    assert got[2] == 1.0
    assert np.all(got[[0, 1, 3, 4, 5]] != 1.0)
    zero = np.zeros(dim, dtype=np.float32)
    np.testing.assert_array_equal(_native.distances(zero, X, "cosine", simd=simd), 1.0)


@pytest.mark.parametrize("simd", LEVELS)
def test_identical_vectors(simd):
    X = random_vectors(5, 384, seed=7)
    for i in range(5):
        d = _native.distances(X[i], X, "l2", simd=simd)
        assert d[i] == 0.0 and np.all(np.delete(d, i) > 1.0)
        c = _native.distances(X[i], X, "cosine", simd=simd)
        assert abs(c[i]) < 1e-6


def test_levels_agree_closely():
    X = random_vectors(50, 1536, seed=8)
    q = random_vectors(1, 1536, seed=9)[0]
    for metric in METRICS:
        base = _native.distances(q, X, metric, simd="scalar")
        for simd in LEVELS:
            np.testing.assert_allclose(_native.distances(q, X, metric, simd=simd), base,
                                       rtol=1e-4, atol=1e-4)


def test_empty_rows():
    out = _native.distances(np.ones(4, np.float32), np.empty((0, 4), np.float32), "l2")
    assert out.shape == (0,)


def test_unsupported_level_raises():
    unsupported = [s for s in _native.SIMD_LEVELS if s not in LEVELS]
    if not unsupported:
        pytest.skip("this CPU supports every SIMD level, so none can be refused")
    X = random_vectors(3, 8)
    for simd in unsupported:
        with pytest.raises(InvalidArgumentError, match=simd):
            _native.distances(X[0], X, "l2", simd=simd)


def test_unknown_level_and_metric_raise():
    X = random_vectors(3, 8)
    with pytest.raises(InvalidArgumentError, match="simd"):
        _native.distances(X[0], X, "l2", simd="sse9")
    with pytest.raises(InvalidArgumentError, match="metric"):
        _native.distances(X[0], X, "hamming")


@pytest.mark.parametrize("bad_query, name", [
    (np.ones(8, np.float64), "query"),
    (np.ones((1, 8), np.float32), "query"),
    (np.ones(7, np.float32), "query"),
    (np.ones(16, np.float32)[::2], "query"),
])
def test_bad_query_raises(bad_query, name):
    with pytest.raises(InvalidArgumentError, match=name):
        _native.distances(bad_query, random_vectors(3, 8), "l2")


def test_bad_rows_raise():
    q = np.ones(8, np.float32)
    for rows in (np.ones((3, 8)), np.ones((8, 3), np.float32).T, np.ones(8, np.float32)):
        with pytest.raises(InvalidArgumentError, match="rows"):
            _native.distances(q, rows, "l2")
