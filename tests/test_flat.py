"""Exact search (vecdb._native.flat_search) against a float64 numpy top-k, and bitset_count.

Two kinds of data: small integers, where L2 and inner-product distances are exact in float32,
so rows, distances and tie-breaking (ties go to the smaller row) must match exactly; and
Gaussian data for all three metrics, matched within float32 tolerance (near-ties may swap).
Sizes are chosen so the C planner takes each of its paths: single-threaded; two threads over
row ranges (few queries); two threads over query blocks (many queries).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import bits_from_mask, exact_distances, exact_topk, random_vectors
from vecdb import _native
from vecdb.errors import InvalidArgumentError

LEVELS = _native.simd_supported()
METRICS = ("l2", "ip", "cosine")

# (n_rows, dim, segment_shift, n_queries). The C planner (flat.c: plan_job) uses 2 threads
# only when n_queries * n_rows * dim >= 2**22; it cuts queries into blocks of up to 64 and,
# with fewer than 8 blocks for 2 threads, also cuts the rows into ranges.
SHAPES = {
    "small": (300, 17, 6, 7),  # one thread; 5 segments of 64 rows, the last partly filled
    "one_query": (40_000, 120, 12, 1),  # 1-query kernel, 8 row ranges
    "rows_split": (40_000, 120, 12, 3),  # one block of 3 queries (padded to 4), 8 row ranges
    "blocks_and_rows": (3_000, 33, 10, 70),  # 2 query blocks x 3 row ranges
    "query_blocks": (1_000, 16, 7, 520),  # 10 query blocks, rows not split
}


def segments_of(X: np.ndarray, shift: int, *, trim_last: bool = True) -> list:
    """X cut into segments of 2**shift rows (the last one only as long as the data)."""
    cap = 1 << shift
    segs = [X[i: i + cap] for i in range(0, X.shape[0], cap)]
    if not trim_last and segs:  # last segment at full capacity, with garbage after the rows
        last = np.full((cap, X.shape[1]), np.nan, dtype=np.float32)
        last[: segs[-1].shape[0]] = segs[-1]
        segs[-1] = last
    return segs


def search(X, Q, k, metric, shift, **kw):
    return _native.flat_search(segments_of(X, shift), shift, X.shape[0], Q, k, metric, **kw)


def assert_same_topk(X, Q, metric, rows, dist, ref_rows, ref_dist, mask=None):
    """Distances equal the reference within float32 tolerance; every returned row is eligible,
    distinct, and really at the distance reported; rows equal the reference except where the
    reference itself has near-ties."""
    assert rows.shape == ref_rows.shape and dist.shape == ref_dist.shape
    assert rows.dtype == np.int64 and dist.dtype == np.float32
    scale = np.abs(exact_distances(X, Q, "ip")).max() + np.abs(ref_dist[np.isfinite(ref_dist)]
                                                                ).max(initial=1.0)
    tol = 1e-5 * (1.0 if metric == "cosine" else scale)
    np.testing.assert_array_equal(rows == -1, ref_rows == -1)
    np.testing.assert_array_equal(np.isinf(dist), np.isinf(ref_dist))
    np.testing.assert_allclose(dist, ref_dist, rtol=0, atol=tol)
    D = exact_distances(X, Q, metric)
    for i in range(Q.shape[0]):
        got = rows[i][rows[i] >= 0]
        assert len(set(got.tolist())) == got.size
        if mask is not None:
            assert mask[got].all()
        np.testing.assert_allclose(D[i, got], dist[i, : got.size], rtol=0, atol=tol)
        # where no near-tie exists, the row must be the reference row
        d = ref_dist[i, : got.size]
        gaps = np.minimum(np.diff(d, prepend=-np.inf), np.diff(d, append=np.inf))
        clear = gaps > 2 * tol
        np.testing.assert_array_equal(got[clear], ref_rows[i, : got.size][clear])


@pytest.mark.parametrize("simd", LEVELS)
@pytest.mark.parametrize("n_threads", (1, 2))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("metric", ("l2", "ip"))
def test_integer_data_exact(simd, n_threads, shape, metric):
    n, dim, shift, nq = SHAPES[shape]
    X = random_vectors(n, dim, seed=1, kind="int")
    X[n // 2] = X[3]  # duplicate rows: ties that must go to the smaller row
    Q = random_vectors(nq, dim, seed=2, kind="int")
    Q[0] = X[3]
    k = 10
    rows, dist = search(X, Q, k, metric, shift, n_threads=n_threads, simd=simd)
    ref_rows, ref_dist = exact_topk(X, Q, k, metric)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(dist, ref_dist.astype(np.float32))
    if metric == "l2":
        assert rows[0, 0] == 3 and dist[0, 0] == 0.0


@pytest.mark.parametrize("simd", LEVELS)
@pytest.mark.parametrize("n_threads", (1, 2))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("metric", METRICS)
def test_gaussian_data(simd, n_threads, shape, metric):
    n, dim, shift, nq = SHAPES[shape]
    X = random_vectors(n, dim, seed=3)
    Q = random_vectors(nq, dim, seed=4)
    rows, dist = search(X, Q, 15, metric, shift, n_threads=n_threads, simd=simd)
    ref_rows, ref_dist = exact_topk(X, Q, 15, metric)
    assert_same_topk(X, Q, metric, rows, dist, ref_rows, ref_dist)


@pytest.mark.parametrize("simd", LEVELS)
@pytest.mark.parametrize("shape", ("small", "rows_split", "blocks_and_rows", "query_blocks"))
@pytest.mark.parametrize("which", ("allow", "deny", "both"))
def test_allow_and_deny_bitsets(simd, shape, which):
    n, dim, shift, nq = SHAPES[shape]
    X = random_vectors(n, dim, seed=5, kind="int")
    Q = random_vectors(nq, dim, seed=6, kind="int")
    rng = np.random.default_rng(7)
    allow_mask = rng.random(n) < 0.3
    deny_mask = rng.random(n) < 0.5
    kw, mask = {}, np.ones(n, dtype=bool)
    if which in ("allow", "both"):
        kw["allow"] = bits_from_mask(allow_mask)
        mask &= allow_mask
    if which in ("deny", "both"):
        kw["deny"] = bits_from_mask(deny_mask)
        mask &= ~deny_mask
    for metric in ("l2", "ip"):
        rows, dist = search(X, Q, 12, metric, shift, n_threads=2, simd=simd, **kw)
        ref_rows, ref_dist = exact_topk(X, Q, 12, metric, mask=mask)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(dist, ref_dist.astype(np.float32))
        assert mask[rows[rows >= 0]].all()


@pytest.mark.parametrize("simd", LEVELS)
def test_k_larger_than_eligible_rows_pads(simd):
    X = random_vectors(300, 17, seed=8)
    Q = random_vectors(5, 17, seed=9)
    for metric in METRICS:
        rows, dist = search(X, Q, 400, metric, 6, simd=simd)  # k > n_rows
        ref_rows, ref_dist = exact_topk(X, Q, 400, metric)
        assert_same_topk(X, Q, metric, rows, dist, ref_rows, ref_dist)
        assert np.all(rows[:, 300:] == -1) and np.all(np.isposinf(dist[:, 300:]))
        assert np.all(rows[:, :300] >= 0)
        mask = np.zeros(300, dtype=bool)
        mask[[5, 64, 299]] = True  # three eligible rows, in three segments
        rows, dist = search(X, Q, 10, metric, 6, simd=simd, allow=bits_from_mask(mask))
        assert np.all(np.sort(rows[:, :3], axis=1) == [5, 64, 299])
        assert np.all(rows[:, 3:] == -1) and np.all(np.isposinf(dist[:, 3:]))
        assert np.all(np.isfinite(dist[:, :3]))


def test_nothing_to_search():
    Q = random_vectors(2, 4)
    rows, dist = _native.flat_search([], 8, 0, Q, 3, "l2")
    assert rows.shape == (2, 3) and np.all(rows == -1) and np.all(np.isposinf(dist))
    X = random_vectors(10, 4)
    rows, dist = _native.flat_search([X], 8, 10, Q, 0, "l2")
    assert rows.shape == (2, 0) and dist.shape == (2, 0)
    rows, dist = _native.flat_search([X], 8, 10, Q[:0], 3, "l2")
    assert rows.shape == (0, 3)
    rows, dist = _native.flat_search([X], 8, 10, Q, 3, "l2", deny=bits_from_mask(np.ones(10)))
    assert np.all(rows == -1) and np.all(np.isposinf(dist))


def test_only_visible_rows_are_read():
    """Rows past n_rows (here NaN garbage in a full-capacity last segment) are never used."""
    X = random_vectors(100, 8, seed=10)
    Q = random_vectors(3, 8, seed=11)
    segs = segments_of(X, 5, trim_last=False)
    assert segs[-1].shape[0] == 32 and np.isnan(segs[-1][4:]).all()
    rows, dist = _native.flat_search(segs, 5, 100, Q, 100, "l2")
    assert np.all(rows >= 0) and np.all(rows < 100) and np.all(np.isfinite(dist))
    # a segment longer than the visible rows, and extra segments, are fine
    rows2, _ = _native.flat_search([X, X], 30, 60, Q, 5, "l2")
    np.testing.assert_array_equal(rows2, exact_topk(X[:60], Q, 5, "l2")[0])


@pytest.mark.parametrize("simd", LEVELS)
@pytest.mark.parametrize("metric", METRICS)
def test_results_do_not_depend_on_the_plan(simd, metric):
    """Same rows and bit-identical distances whatever the threads, segments and query grouping
    (a query alone uses the 1x4 kernel, in a batch the 4x3 one); and the distances equal
    distances() bit for bit."""
    X = random_vectors(6000, 45, seed=12)
    Q = random_vectors(9, 45, seed=13)
    base_rows, base_dist = search(X, Q, 20, metric, 20, n_threads=1, simd=simd)
    for shift in (7, 12):
        for n_threads in (0, 1, 2, 3):
            rows, dist = search(X, Q, 20, metric, shift, n_threads=n_threads, simd=simd)
            np.testing.assert_array_equal(rows, base_rows)
            np.testing.assert_array_equal(dist, base_dist)
    for i in (0, 5, 8):
        rows, dist = search(X, Q[i: i + 1], 20, metric, 9, n_threads=2, simd=simd)
        np.testing.assert_array_equal(rows[0], base_rows[i])
        np.testing.assert_array_equal(dist[0], base_dist[i])
        all_dist = _native.distances(Q[i], X, metric, simd=simd)
        np.testing.assert_array_equal(all_dist[base_rows[i]], base_dist[i])


def test_bad_arguments_name_themselves():
    X = random_vectors(100, 8)
    Q = random_vectors(2, 8)
    segs = segments_of(X, 6)
    bits = bits_from_mask(np.ones(100, dtype=bool))
    cases = [
        (dict(queries=Q.astype(np.float64)), "queries"),
        (dict(queries=Q[0]), "queries"),
        (dict(queries=np.asfortranarray(random_vectors(8, 3))), "queries"),
        (dict(queries=random_vectors(2, 9)), "queries"),
        (dict(segments=segs[:1]), "segments"),
        (dict(segments=[segs[0], segs[1][:10]]), r"segments\[1\]"),
        (dict(segments=[segs[0], segs[1].astype(np.float64)]), r"segments\[1\]"),
        (dict(k=-1), "k"),
        (dict(k=2.5), "k"),
        (dict(n_rows=-1), "n_rows"),
        (dict(segment_shift=64), "segment_shift"),
        (dict(metric="manhattan"), "metric"),
        (dict(allow=bits[:1]), "allow"),
        (dict(deny=bits.astype(np.int64)), "deny"),
        (dict(n_threads=-2), "n_threads"),
        (dict(simd="mmx"), "simd"),
    ]
    for override, name in cases:
        args = dict(segments=segs, segment_shift=6, n_rows=100, queries=Q, k=3, metric="l2")
        args.update(override)
        kw = {key: args.pop(key) for key in ("allow", "deny", "n_threads", "simd") if key in args}
        with pytest.raises(InvalidArgumentError, match=name):
            _native.flat_search(args["segments"], args["segment_shift"], args["n_rows"],
                                args["queries"], args["k"], args["metric"], **kw)


@pytest.mark.parametrize("n_bits", (0, 1, 63, 64, 65, 1000, 4096))
def test_bitset_count(n_bits):
    rng = np.random.default_rng(n_bits)
    mask = rng.random(n_bits + 200) < 0.4  # bits past n_bits are set too and must be ignored
    bits = bits_from_mask(mask)
    assert _native.bitset_count(bits, n_bits) == int(mask[:n_bits].sum())
    assert _native.bitset_count(bits_from_mask(np.ones(n_bits + 1, bool)), n_bits) == n_bits


def test_bitset_count_checks_length():
    with pytest.raises(InvalidArgumentError, match="bits"):
        _native.bitset_count(np.zeros(1, np.uint64), 65)
    with pytest.raises(InvalidArgumentError, match="bits"):
        _native.bitset_count(np.zeros(2, np.int64), 65)


@pytest.mark.parametrize("shape", ["small", "rows_split", "query_blocks"])
def test_stats_count_every_row_examined(shape):
    """stats: distances == visited == eligible rows x queries, whatever the plan (threads,
    blocks, row ranges); counts are added to the dict, not reset."""
    n, dim, shift, nq = SHAPES[shape]
    X = random_vectors(n, dim, seed=21)
    Q = random_vectors(nq, dim, seed=22)
    rng = np.random.default_rng(23)
    allowed = rng.random(n) < 0.3
    denied = rng.random(n) < 0.1
    for kw, eligible in (({}, n), ({"allow": bits_from_mask(allowed)}, allowed.sum()),
                         ({"allow": bits_from_mask(allowed), "deny": bits_from_mask(denied)},
                          (allowed & ~denied).sum())):
        stats = {}
        search(X, Q, 5, "l2", shift, stats=stats, **kw)
        assert stats == {"visited": eligible * nq, "distances": eligible * nq}
        search(X, Q, 5, "l2", shift, stats=stats, n_threads=1, **kw)
        assert stats == {"visited": 2 * eligible * nq, "distances": 2 * eligible * nq}
    with pytest.raises(InvalidArgumentError):
        search(X, Q, 5, "l2", shift, stats=())


# -- rescore: exact distances of candidate rows (csrc/rescore.c) --------------------------------

def flat_among(X, Q, cand, k, metric, shift, simd=None):
    """The reference: per query, flat_search restricted (allow bitset) to its valid candidates."""
    n = X.shape[0]
    rows = np.full((Q.shape[0], k), -1, dtype=np.int64)
    dist = np.full((Q.shape[0], k), np.inf, dtype=np.float32)
    for i in range(Q.shape[0]):
        c = cand[i]
        mask = np.zeros(n, dtype=bool)
        mask[c[(c >= 0) & (c < n)]] = True
        r, d = search(X, Q[i: i + 1], k, metric, shift, allow=bits_from_mask(mask), simd=simd)
        rows[i], dist[i] = r[0], d[0]
    return rows, dist


@pytest.mark.parametrize("simd", LEVELS)
@pytest.mark.parametrize("kind", ("int", "gaussian"))
@pytest.mark.parametrize("metric", METRICS)
def test_rescore_equals_flat_search_among_candidates(simd, kind, metric):
    # integer data: many exact ties, so the tie-break (smaller row) is checked too
    X = random_vectors(2_000, 24, seed=3, kind=kind)
    Q = random_vectors(12, 24, seed=4, kind=kind)
    shift = 9  # 4 segments
    rng = np.random.default_rng(5)
    cand = np.ascontiguousarray(rng.integers(0, X.shape[0], size=(Q.shape[0], 150)),
                                dtype=np.int64)
    rows, dist = _native.rescore(segments_of(X, shift), shift, X.shape[0], Q, cand, 10, metric,
                                 simd=simd)
    ref_rows, ref_dist = flat_among(X, Q, cand, 10, metric, shift, simd=simd)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_array_equal(dist, ref_dist)  # bit-equal: same kernels and finishing


def test_rescore_skips_duplicates_negative_and_out_of_range():
    X = random_vectors(500, 16, seed=6)
    Q = random_vectors(5, 16, seed=7)
    n = X.shape[0]
    rng = np.random.default_rng(8)
    clean = np.stack([rng.choice(n, size=30, replace=False) for _ in range(Q.shape[0])])
    noise = np.stack([np.concatenate([c, c[:10], [-1, -5, n, n + 7, 2**62]]) for c in clean])
    noise = np.ascontiguousarray(rng.permuted(noise, axis=1), dtype=np.int64)
    clean = np.ascontiguousarray(clean, dtype=np.int64)
    for k in (10, 30, 45):  # 45 > the 30 distinct valid candidates: padded
        a = _native.rescore([X], 10, n, Q, clean, k, "l2")
        b = _native.rescore([X], 10, n, Q, noise, k, "l2")
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert all(len(set(r[r >= 0].tolist())) == (r >= 0).sum() for r in b[0])  # distinct
        if k == 45:
            assert np.all(b[0][:, 30:] == -1) and np.all(np.isinf(b[1][:, 30:]))
            assert np.all(b[0][:, :30] >= 0)


def test_rescore_only_visible_rows_and_empty_candidates():
    X = random_vectors(300, 8, seed=9)
    Q = random_vectors(3, 8, seed=10)
    cand = np.ascontiguousarray(np.tile(np.arange(300, dtype=np.int64), (3, 1)))
    rows, dist = _native.rescore([X], 10, 100, Q, cand, 5, "ip")  # rows >= 100 not visible
    ref = search(X[:100], Q, 5, "ip", 10)
    np.testing.assert_array_equal(rows, ref[0])
    np.testing.assert_array_equal(dist, ref[1])
    none = np.empty((3, 0), dtype=np.int64)
    rows, dist = _native.rescore([X], 10, 300, Q, none, 4, "l2")
    assert np.all(rows == -1) and np.all(np.isinf(dist))
    rows, dist = _native.rescore([X], 10, 300, Q, cand, 0, "l2")
    assert rows.shape == (3, 0)


def test_rescore_does_not_depend_on_threads():
    X = random_vectors(5_000, 64, seed=11)
    Q = random_vectors(64, 64, seed=12)
    rng = np.random.default_rng(13)
    cand = np.ascontiguousarray(rng.integers(-10, 5_010, size=(64, 400)), dtype=np.int64)
    one = _native.rescore([X], 13, 5_000, Q, cand, 20, "cosine", n_threads=1)
    many = _native.rescore([X], 13, 5_000, Q, cand, 20, "cosine", n_threads=3)
    np.testing.assert_array_equal(one[0], many[0])
    np.testing.assert_array_equal(one[1], many[1])


def test_rescore_bad_arguments():
    X = random_vectors(50, 4, seed=14)
    Q = random_vectors(2, 4, seed=15)
    cand = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(InvalidArgumentError, match="metric"):
        _native.rescore([X], 10, 50, Q, cand, 1, "hamming")
    with pytest.raises(InvalidArgumentError, match="cand"):
        _native.rescore([X], 10, 50, Q, cand[:1], 1, "l2")
    with pytest.raises(InvalidArgumentError, match="cand"):
        _native.rescore([X], 10, 50, Q, cand.astype(np.int32), 1, "l2")
    with pytest.raises(InvalidArgumentError):
        _native.rescore([X], 10, 50, Q[:, :3].copy(), cand, 1, "l2")  # dim mismatch
