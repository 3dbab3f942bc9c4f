"""PQ (csrc/pq.c) through vecdb._native: training is per-subspace k-means and independent of
the thread count, encoding picks the nearest centroid of every sub-vector, decoding looks
codes up, ADC distances equal the distances to the decoded rows, and bad inputs are refused
with the argument named."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb import _native
from vecdb.errors import InvalidArgumentError

LEVELS = _native.simd_supported()


def data(n, dim, seed=0):
    """Rows with some structure (a few clusters plus noise), and a query."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (20, dim))
    x = centres[rng.integers(0, 20, n)] + rng.normal(0, 1, (n, dim))
    return x.astype(np.float32), rng.normal(0, 2, dim).astype(np.float32)


@pytest.fixture(scope="module")
def trained():
    x, query = data(1200, 32, seed=1)
    params = _native.pq_train(x, 8, iters=10, seed=3)
    return x, query, params


def codebooks(params, m, dim):
    return params.reshape(m, 256, dim // m)


def test_train_is_kmeans_of_each_subspace(trained):
    x, _, params = trained
    books = codebooks(params, 8, 32)
    for j in range(8):
        c, _ = _native.kmeans(x[:, 4 * j: 4 * j + 4].copy(), 256, iters=10, seed=3)
        np.testing.assert_array_equal(books[j], c)


def test_train_does_not_depend_on_threads_or_small_dim_simd_level(trained):
    x, _, params = trained
    for n_threads in (1, 2, 3):
        for simd in LEVELS:  # sub-vectors of 4 dims: the level-independent k-means path
            np.testing.assert_array_equal(
                _native.pq_train(x, 8, iters=10, seed=3, n_threads=n_threads, simd=simd),
                params)


@pytest.mark.parametrize("m,dim", [(8, 32), (2, 128)])  # 4 and 64 dims per sub-vector
def test_encode_picks_the_nearest_centroid_of_every_sub_vector(m, dim):
    x, _ = data(600, dim, seed=m)
    params = _native.pq_train(x, m, iters=5, seed=1)
    books = codebooks(params, m, dim).astype(np.float64)
    dsub = dim // m
    for simd in LEVELS:
        for n_threads in (1, 2):
            q = _native.Quantizer("pq", "l2", dim, params, m=m)
            codes = q.encode(x, simd=simd, n_threads=n_threads)
            assert codes.shape == (600, m) and codes.dtype == np.uint8 and q.code_size == m
            for j in range(m):
                sub = x[:, j * dsub:(j + 1) * dsub].astype(np.float64)
                d = ((sub[:, None, :] - books[j][None]) ** 2).sum(-1)
                chosen = d[np.arange(len(x)), codes[:, j]]
                np.testing.assert_allclose(chosen, d.min(1), rtol=1e-5, atol=1e-6)
                srt = np.sort(d, axis=1)
                clear = srt[:, 1] - srt[:, 0] > 1e-4 * (1 + srt[:, 0])
                np.testing.assert_array_equal(codes[clear, j], d.argmin(1)[clear])


def test_decode_and_round_trip_error(trained):
    x, _, params = trained
    q = _native.Quantizer("pq", "l2", 32, params, m=8)
    codes, errors = q.encode(x, errors=True)
    dec = q.decode(codes)
    books = codebooks(params, 8, 32)
    want = np.concatenate([books[j][codes[:, j]] for j in range(8)], axis=1)
    np.testing.assert_array_equal(dec, want)
    err = ((dec.astype(np.float64) - x) ** 2).sum(1)
    np.testing.assert_allclose(errors, err, rtol=1e-5)
    # a codebook of random training sub-vectors quantizes clearly worse than the trained one
    rng = np.random.default_rng(0)
    rand = np.concatenate([x[rng.choice(len(x), 256, replace=False), 4 * j: 4 * j + 4]
                           for j in range(8)]).astype(np.float32).ravel()
    _, rand_errors = _native.Quantizer("pq", "l2", 32, rand, m=8).encode(x, errors=True)
    assert errors.mean() < 0.7 * rand_errors.mean()


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_adc_equals_decoded_distances(trained, metric):
    x, query, params = trained
    q = _native.Quantizer("pq", metric, 32, params, m=8)
    codes = q.encode(x[:1003])  # not a multiple of the four rows scanned together
    dec = q.decode(codes).astype(np.float64)
    qd = query.astype(np.float64)
    want = ((dec - qd) ** 2).sum(1) if metric == "l2" else -(dec @ qd)
    got = q.distances(query, codes)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    for simd in LEVELS:  # portable tables and scan: the same bits on every level
        np.testing.assert_array_equal(q.distances(query, codes, simd=simd), got)
    # a row's distance does not depend on the rows scanned with it
    for i in (0, 1, 2, 3, 1000, 1002):
        assert q.distances(query, codes[i:i + 1].copy())[0] == got[i]


def test_bad_inputs_name_the_argument(trained):
    x, query, params = trained
    with pytest.raises(InvalidArgumentError, match=r"^m:"):
        _native.pq_train(x, 5)  # 5 does not divide 32
    with pytest.raises(InvalidArgumentError, match=r"^m:"):
        _native.pq_train(x, 0)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        _native.pq_train(x[:255].copy(), 8)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        _native.pq_train(x.astype(np.float64), 8)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        _native.pq_train(x[0], 8)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        _native.pq_train(np.asfortranarray(x), 8)
    with pytest.raises(InvalidArgumentError, match=r"^metric:"):
        _native.Quantizer("pq", "cosine", 32, params, m=8)
    with pytest.raises(InvalidArgumentError, match=r"^m:"):
        _native.Quantizer("pq", "l2", 32, params, m=5)
    with pytest.raises(InvalidArgumentError, match=r"^m:"):
        _native.Quantizer("pq", "l2", 32, params, m=0)
    with pytest.raises(InvalidArgumentError, match=r"^params:"):
        _native.Quantizer("pq", "l2", 32, params[:-1].copy(), m=8)
    with pytest.raises(InvalidArgumentError, match=r"^params:"):
        _native.Quantizer("pq", "l2", 32, params.astype(np.float64), m=8)
    q = _native.Quantizer("pq", "ip", 32, params, m=8)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        q.encode(x[:, :16].copy())
    with pytest.raises(InvalidArgumentError, match=r"^codes:"):
        q.decode(q.encode(x)[:, :7].copy())
    with pytest.raises(InvalidArgumentError, match=r"^query:"):
        q.distances(query.astype(np.float64), q.encode(x))
