"""k-means (csrc/kmeans.c) through vecdb._native.kmeans / kmeans_assign: determinism under a
seed whatever the thread count, recovery of well-separated blobs, empty-cluster repair, and
the assignment against a numpy argmin. Dims 12 and 40 take the small-dim path (<= 48, no
FMA: identical on every SIMD level); 100 takes the blocked-kernel path."""

from __future__ import annotations

import numpy as np
import pytest

from vecdb import _native
from vecdb.errors import InvalidArgumentError

LEVELS = _native.simd_supported()


def blobs(rng, n_centres, per, dim, spread=0.05, scale=10.0):
    centres = rng.uniform(-scale, scale, size=(n_centres, dim)).astype(np.float32)
    x = np.repeat(centres, per, axis=0) + rng.normal(0, spread, (n_centres * per, dim))
    return centres, rng.permutation(x.astype(np.float32))


def sqdist(a, b):
    """Exact squared L2 (float64) between every row of a and every row of b."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]


@pytest.mark.parametrize("dim", [12, 100])
@pytest.mark.parametrize("simd", LEVELS)
def test_deterministic_under_seed_for_any_thread_count(simd, dim):
    x = np.random.default_rng(1).standard_normal((3000, dim)).astype(np.float32)
    runs = [_native.kmeans(x, 40, iters=8, seed=7, n_threads=t, simd=simd) for t in (1, 2, 3)]
    for c, inertia in runs[1:]:
        np.testing.assert_array_equal(c, runs[0][0])
        assert inertia == runs[0][1]
    again, _ = _native.kmeans(x, 40, iters=8, seed=7, n_threads=2, simd=simd)
    np.testing.assert_array_equal(again, runs[0][0])
    other, _ = _native.kmeans(x, 40, iters=8, seed=8, n_threads=2, simd=simd)
    assert not np.array_equal(other, runs[0][0])


def test_small_dims_identical_on_every_simd_level():
    x = np.random.default_rng(2).standard_normal((4000, 40)).astype(np.float32)
    ref, ref_inertia = _native.kmeans(x, 64, iters=6, seed=3, simd="scalar")
    for simd in LEVELS[1:]:
        c, inertia = _native.kmeans(x, 64, iters=6, seed=3, simd=simd)
        np.testing.assert_array_equal(c, ref)
        assert inertia == ref_inertia


@pytest.mark.parametrize("dim", [2, 40, 100])
def test_recovers_well_separated_blob_centres(dim):
    rng = np.random.default_rng(dim)
    centres, x = blobs(rng, 12, 150, dim)
    c, inertia = _native.kmeans(x, 12, seed=5)
    # every true centre has exactly one centroid next to it, within the blob's noise
    d = np.sqrt(sqdist(centres, c).clip(0))
    assert sorted(d.argmin(1).tolist()) == list(range(12))
    assert d.min(1).max() < 0.05
    assert inertia == pytest.approx(dim * 0.05 ** 2, rel=0.15)


def test_inertia_is_the_mean_squared_distance_to_the_nearest_centroid():
    x = np.random.default_rng(4).standard_normal((2000, 20)).astype(np.float32)
    for iters in (0, 3, 50):  # stops before, at and well after convergence
        c, inertia = _native.kmeans(x, 16, iters=iters, seed=1)
        assert inertia == pytest.approx(sqdist(x, c).min(1).mean(), rel=1e-5)


@pytest.mark.parametrize("dim", [3, 64])
def test_duplicate_points_give_distinct_centroids(dim):
    rng = np.random.default_rng(dim)
    distinct = rng.standard_normal((40, dim)).astype(np.float32)
    x = rng.permutation(np.repeat(distinct, 5, axis=0))  # 200 rows, 40 distinct
    c, inertia = _native.kmeans(x, 40, seed=2)
    assert len(np.unique(c, axis=0)) == 40
    assert inertia == 0.0  # each distinct point is a centroid
    np.testing.assert_array_equal(np.unique(c, axis=0), np.unique(distinct, axis=0))


@pytest.mark.parametrize("dim", [4, 64])
def test_repair_when_the_sample_holds_fewer_distinct_points_than_k(dim):
    # 4900 copies of one point and 100 others: the k-means++ sample (1200 points) sees only a
    # few of the others, so initial centroids repeat and clusters come out empty
    rng = np.random.default_rng(9)
    others = rng.standard_normal((100, dim)).astype(np.float32) + 5
    x = rng.permutation(np.concatenate([np.zeros((4900, dim), np.float32), others]))
    c, _ = _native.kmeans(x, 50, iters=30, seed=4)
    assert len(np.unique(c, axis=0)) == 50
    assign, _ = _native.kmeans_assign(c, x)
    assert len(np.unique(assign)) == 50  # no cluster is empty


@pytest.mark.parametrize("dim", [5, 40])
def test_k_close_to_n(dim):
    x = np.random.default_rng(3).standard_normal((60, dim)).astype(np.float32)
    for k in (58, 59, 60):
        c, inertia = _native.kmeans(x, k, seed=1)
        assert len(np.unique(c, axis=0)) == k
        if k == 60:
            assert inertia == 0.0
            np.testing.assert_array_equal(np.unique(c, axis=0), np.unique(x, axis=0))


@pytest.mark.parametrize("k", [1, 7, 256, 300])
@pytest.mark.parametrize("dim", [1, 8, 47, 48, 49, 100])
def test_assign_equals_numpy_argmin(dim, k):
    rng = np.random.default_rng(dim * 1000 + k)
    c = rng.standard_normal((k, dim)).astype(np.float32)
    x = rng.standard_normal((500, dim)).astype(np.float32)
    d = sqdist(x, c)
    for simd in LEVELS:
        for n_threads in (1, 2):
            assign, dist = _native.kmeans_assign(c, x, n_threads=n_threads, simd=simd)
            assert assign.dtype == np.uint32 and dist.dtype == np.float32
            # the chosen centroid is the nearest up to float rounding of the ranking...
            chosen = d[np.arange(len(x)), assign]
            np.testing.assert_allclose(chosen, d.min(1), rtol=1e-5, atol=1e-5)
            # ... and exactly numpy's argmin wherever the best two are not near-tied
            srt = np.sort(d, axis=1)
            clear = srt[:, 1] - srt[:, 0] > 1e-4 * (1 + srt[:, 0]) if k > 1 else slice(None)
            np.testing.assert_array_equal(assign[clear], d.argmin(1)[clear])
            np.testing.assert_allclose(dist, chosen, rtol=1e-5, atol=1e-5)


def test_assign_ties_go_to_the_smaller_index():
    c = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32)
    x = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
    for simd in LEVELS:
        assign, dist = _native.kmeans_assign(c, x, simd=simd)
        assert assign.tolist() == [0, 1, 0, 0]
        assert dist.tolist() == [0.0, 0.0, 1.0, 1.0]


def test_bad_arguments_name_the_argument():
    x = np.zeros((10, 4), np.float32)
    with pytest.raises(InvalidArgumentError, match=r"^k:"):
        _native.kmeans(x, 11)
    with pytest.raises(InvalidArgumentError, match=r"^k:"):
        _native.kmeans(x, 0)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        _native.kmeans(x.astype(np.float64), 2)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        _native.kmeans(x[0], 2)
    with pytest.raises(InvalidArgumentError, match=r"^x:"):
        _native.kmeans_assign(np.zeros((3, 5), np.float32), x)
    with pytest.raises(InvalidArgumentError, match=r"^centroids:"):
        _native.kmeans_assign(np.zeros((0, 4), np.float32), x)
    with pytest.raises(InvalidArgumentError, match=r"^simd:"):
        _native.kmeans(x, 2, simd="mmx")
