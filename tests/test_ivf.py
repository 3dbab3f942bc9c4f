"""IVF-PQ search (vecdb._native.ivfpq_search, csrc/ivf.c) on an index built in the test:
coarse k-means, PQ of the residuals, one inverted list per centroid.

Checked against numpy: with every list probed the result is the exact ADC ranking (distances
to the decoded rows, centroid + decoded residual); after rescoring, recall against exact
search; allow / deny / n_rows limits; empty lists; threads; work counts. The same under L2
with per-row norm terms |x^|^2 - |c|^2 (one ADC table per query), which must agree with the per-list
tables up to float rounding; norms are ignored under IP; bad norms are refused.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import bits_from_mask, clustered_vectors, exact_distances, exact_topk, recall_at_k
from vecdb import _native
from vecdb._core import ffi
from vecdb.errors import InvalidArgumentError

NLIST, M = 24, 8


class Index:
    """An IVF-PQ index of X: centroids, per-row list and residual codes, and IvfLists."""

    def __init__(self, X, metric, nlist=NLIST, m=M, extra_empty=0):
        self.X, self.metric = X, metric
        centroids, _ = _native.kmeans(X, nlist, iters=10, seed=3)
        if extra_empty:  # far-away centroids whose lists stay empty
            far = np.full((extra_empty, X.shape[1]), 1e3, dtype=np.float32)
            far *= np.arange(1, extra_empty + 1, dtype=np.float32)[:, None]
            centroids = np.ascontiguousarray(np.vstack([centroids, far]))
        self.centroids = centroids
        assign, _ = _native.kmeans_assign(centroids, X)
        self.assign = assign.astype(np.int64)
        resid = np.ascontiguousarray(X - centroids[self.assign])
        params = _native.pq_train(resid, m, iters=8, seed=4)
        self.quant = _native.Quantizer("pq", metric, X.shape[1], params, m=m)
        self.codes = self.quant.encode(resid)
        self.rows_of = [np.flatnonzero(self.assign == i).astype(np.uint32)
                        for i in range(centroids.shape[0])]
        # what each code stands for: centroid + decoded residual
        self.decoded = self.quant.decode(self.codes) + centroids[self.assign]
        # each decoded row's norm term |x^|^2 - |c|^2 = 2 c.r^ + |r^|^2 (float64, stored float32)
        r_hat = self.quant.decode(self.codes).astype(np.float64)
        c = centroids[self.assign].astype(np.float64)
        self.norms = (r_hat * (2 * c + r_hat)).sum(axis=1).astype(np.float32)
        self.lists = self.make_lists(self.rows_of)
        self.norm_lists = self.make_lists(self.rows_of, norms=True)

    def make_lists(self, rows_of, norms=False):
        codes = [np.ascontiguousarray(self.codes[r]) for r in rows_of]
        per_list = [np.ascontiguousarray(self.norms[r]) for r in rows_of] if norms else None
        return _native.IvfLists(self.centroids, rows_of, codes, [len(r) for r in rows_of],
                                self.quant.code_size, norms=per_list)

    def search(self, Q, k, nprobe, norms=False, **kw):
        lists = self.norm_lists if norms else self.lists
        return _native.ivfpq_search(self.quant, lists, self.X.shape[0], Q, k, nprobe, **kw)

    def adc_exact(self, Q, k, mask=None):
        """numpy (float64) top-k by distance to the decoded rows."""
        return exact_topk(self.decoded, Q, k, self.metric, mask=mask)


@pytest.fixture(scope="module")
def data():
    return clustered_vectors(6_000, 32, n_queries=40, clusters=30, seed=2)


@pytest.fixture(scope="module")
def index_l2(data):
    return Index(data[0], "l2")


@pytest.fixture(scope="module")
def index_ip(data):
    return Index(data[0], "ip")


def assert_same_ranking(rows, dist, ref_rows, ref_dist):
    """Rows equal numpy's, except swaps between near-equal distances (float rounding)."""
    assert rows.shape == ref_rows.shape
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-4, atol=1e-4 * np.abs(ref_dist).max())
    differ = rows != ref_rows
    assert differ.mean() < 0.02
    # where rows differ the two candidates are (near-)tied
    np.testing.assert_allclose(dist[differ], ref_dist[differ], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_all_lists_probed_is_the_exact_adc_ranking(data, index_l2, index_ip, metric):
    index = index_l2 if metric == "l2" else index_ip
    Q = data[1]
    rows, dist = index.search(Q, 10, NLIST)
    ref_rows, ref_dist = index.adc_exact(Q, 10)
    assert_same_ranking(rows, dist, ref_rows, ref_dist)


def test_l2_distances_are_adc_of_the_residual_query(data, index_l2):
    """Under L2 a code's distance is exactly the quantizer's ADC of q - centroid."""
    index, Q = index_l2, data[1]
    rows, dist = index.search(Q, 10, 4)
    for i in range(Q.shape[0]):
        for r, d in zip(rows[i], dist[i]):
            c = index.centroids[index.assign[r]]
            adc = index.quant.distances(np.ascontiguousarray(Q[i] - c), index.codes[r: r + 1])
            assert adc[0] == d


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_recall_after_rescore(data, index_l2, index_ip, metric):
    index = index_l2 if metric == "l2" else index_ip
    X, Q = data
    cand, _ = index.search(Q, 100, 6)
    rows, _ = _native.rescore((X,), 20, X.shape[0], Q, cand, 10, metric)
    truth, _ = exact_topk(X, Q, 10, metric)
    assert recall_at_k(rows, truth) >= 0.95


@pytest.mark.parametrize("norms", [False, True])
def test_allow_and_deny(data, index_l2, norms):
    index, (X, Q) = index_l2, data
    n = X.shape[0]
    rng = np.random.default_rng(5)
    for share in (0.02, 0.3):
        allowed = rng.random(n) < share
        denied = rng.random(n) < 0.3
        mask = allowed & ~denied
        rows, dist = index.search(Q, 10, NLIST, norms, allow=bits_from_mask(allowed),
                                  deny=bits_from_mask(denied))
        found = rows[rows >= 0]
        assert mask[found].all()
        assert_same_ranking(rows, dist, *index.adc_exact(Q, 10, mask=mask))
    denied = rng.random(n) < 0.5
    rows, dist = index.search(Q, 10, NLIST, norms, deny=bits_from_mask(denied))
    assert not denied[rows[rows >= 0]].any()
    assert_same_ranking(rows, dist, *index.adc_exact(Q, 10, mask=~denied))
    rows, dist = index.search(Q[:3], 5, NLIST, norms, allow=bits_from_mask(np.zeros(n, bool)))
    assert (rows == -1).all() and np.isinf(dist).all()


@pytest.mark.parametrize("norms", [False, True])
def test_n_rows_limit_and_k_beyond_the_rows(data, index_l2, norms):
    index, (X, Q) = index_l2, data
    lists = index.norm_lists if norms else index.lists
    limit = 2_500
    rows, dist = _native.ivfpq_search(index.quant, lists, limit, Q, 10, NLIST)
    assert ((rows >= 0) & (rows < limit)).all()
    mask = np.arange(X.shape[0]) < limit
    assert_same_ranking(rows, dist, *index.adc_exact(Q, 10, mask=mask))
    rows, dist = _native.ivfpq_search(index.quant, lists, 7, Q[:2], 10, NLIST)
    assert (np.sort(rows[:, :7], axis=1) == np.arange(7)).all()
    assert (rows[:, 7:] == -1).all() and np.isinf(dist[:, 7:]).all()


def test_empty_lists(data):
    X, Q = data[0][:2_000], data[1]
    index = Index(X, "l2", nlist=8, extra_empty=3)
    assert [len(r) for r in index.rows_of[-3:]] == [0, 0, 0]
    rows, dist = index.search(Q, 10, 11)
    assert_same_ranking(rows, dist, *index.adc_exact(Q, 10))
    rows, dist = index.search(Q, 10, 11, norms=True)  # empty lists hold empty norm arrays
    assert_same_ranking(rows, dist, *index.adc_exact(Q, 10))
    # norms None (NULL) for the empty lists
    codes = [np.ascontiguousarray(index.codes[r]) for r in index.rows_of]
    norms = [np.ascontiguousarray(index.norms[r]) if len(r) else None for r in index.rows_of]
    lists = _native.IvfLists(index.centroids, index.rows_of, codes,
                             [len(r) for r in index.rows_of], index.quant.code_size, norms=norms)
    again = _native.ivfpq_search(index.quant, lists, X.shape[0], Q, 10, 11)
    assert np.array_equal(again[0], rows) and np.array_equal(again[1], dist)
    # every list empty, arrays of length zero
    none = [np.empty(0, np.uint32)] * len(index.rows_of)
    empty = _native.IvfLists(index.centroids, none, [index.codes[:0]] * len(none),
                             [0] * len(none), index.quant.code_size)
    rows, dist = _native.ivfpq_search(index.quant, empty, X.shape[0], Q[:2], 4, 3)
    assert (rows == -1).all() and np.isinf(dist).all()


@pytest.mark.parametrize("norms", [False, True])
def test_nprobe_threads_and_stats(data, index_l2, norms):
    index, Q = index_l2, data[1]
    nq = Q.shape[0]
    one, many = {}, {}
    a = index.search(Q, 10, 5, norms, n_threads=1, stats=one)
    b = index.search(Q, 10, 5, norms, n_threads=3, stats=many)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert one == many
    assert one["visited"] == 5 * nq  # no list is empty here
    # distances: every centroid, then every code of the probed lists
    cdist = exact_distances(index.centroids, Q, "l2")
    probed = np.argsort(cdist, axis=1, kind="stable")[:, :5]
    sizes = np.array([len(r) for r in index.rows_of])
    assert one["distances"] == nq * NLIST + int(sizes[probed].sum())
    # more lists probed: ADC distances can only get better
    c = index.search(Q, 10, NLIST, norms)
    assert (c[1][:, -1] <= a[1][:, -1] + 1e-6).all()
    big = index.search(Q, 10, 10 * NLIST, norms)  # nprobe above nlist: every list
    assert np.array_equal(big[0], c[0])


def test_argument_errors(data, index_l2):
    index, (X, Q) = index_l2, data
    with pytest.raises(InvalidArgumentError):
        index.search(Q, 10, 0)
    sq = _native.Quantizer("sq8", "l2", X.shape[1], _native.sq8_train(X))
    with pytest.raises(InvalidArgumentError):
        _native.ivfpq_search(sq, index.lists, X.shape[0], Q, 10, 2)
    with pytest.raises(InvalidArgumentError):
        index.search(Q[:, :16].copy(), 10, 2)
    wrong_m = _native.Quantizer("pq", "l2", X.shape[1], index.quant.params.copy(), m=4)
    with pytest.raises(InvalidArgumentError):  # lists hold codes of m=8
        _native.IvfLists(index.centroids, index.rows_of,
                         [np.ascontiguousarray(index.codes[r]) for r in index.rows_of],
                         [len(r) for r in index.rows_of], wrong_m.code_size)


# -- L2 with per-row norms: one ADC table per query -------------------------------------------


@pytest.mark.parametrize("nprobe", [NLIST, 6, 1])
def test_l2_norms_agree_with_per_list_tables(data, index_l2, nprobe):
    """Same rows as the per-list tables (but for swaps of near-ties) and the same distances up
    to float rounding, relative to the distance scale."""
    index, Q = index_l2, data[1]
    rows_t, dist_t = index.search(Q, 20, nprobe)
    rows_n, dist_n = index.search(Q, 20, nprobe, norms=True)
    scale = np.abs(dist_t).max()
    np.testing.assert_allclose(dist_n, dist_t, rtol=1e-4, atol=1e-5 * scale)
    differ = rows_n != rows_t
    assert differ.mean() < 0.02
    # a row's distance is the same in both (whatever slot it lands in)
    for i in range(Q.shape[0]):
        ref = dict(zip(rows_t[i].tolist(), dist_t[i].tolist()))
        for r, d in zip(rows_n[i].tolist(), dist_n[i].tolist()):
            if r in ref:
                assert abs(d - ref[r]) <= 1e-4 * abs(ref[r]) + 1e-5 * scale
    if nprobe == NLIST:  # every list probed: the exact ADC ranking
        assert_same_ranking(rows_n, dist_n, *index.adc_exact(Q, 20))


def test_l2_norms_distance_is_adc_of_the_decoded_row(data, index_l2):
    index, Q = index_l2, data[1]
    rows, dist = index.search(Q, 10, 4, norms=True)
    ref = exact_distances(index.decoded, Q, "l2")
    np.testing.assert_allclose(dist, np.take_along_axis(ref, rows, axis=1), rtol=1e-4,
                               atol=1e-5 * np.abs(ref).max())
    # the norms are what the search adds: shifted norms shift every distance
    codes = [np.ascontiguousarray(index.codes[r]) for r in index.rows_of]
    shifted = [np.ascontiguousarray(index.norms[r] + np.float32(1000)) for r in index.rows_of]
    lists = _native.IvfLists(index.centroids, index.rows_of, codes,
                             [len(r) for r in index.rows_of], index.quant.code_size,
                             norms=shifted)
    rows2, dist2 = _native.ivfpq_search(index.quant, lists, index.X.shape[0], Q, 10, 4)
    assert np.array_equal(rows2[:, 0], rows[:, 0])
    np.testing.assert_allclose(dist2, dist + 1000, rtol=1e-5)


def test_norms_are_ignored_under_ip(data, index_ip):
    index, Q = index_ip, data[1]
    for nprobe in (NLIST, 3):
        a = index.search(Q, 10, nprobe)
        b = index.search(Q, 10, nprobe, norms=True)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_bad_norms(index_l2):
    index = index_l2
    codes = [np.ascontiguousarray(index.codes[r]) for r in index.rows_of]
    sizes = [len(r) for r in index.rows_of]
    good = [np.ascontiguousarray(index.norms[r]) for r in index.rows_of]

    def lists(norms):
        return _native.IvfLists(index.centroids, index.rows_of, codes, sizes,
                                index.quant.code_size, norms=norms)

    bad_cases = [
        good[:-1],                                               # one list short
        [good[0].astype(np.float64)] + good[1:],                 # wrong dtype
        [good[0][:-1]] + good[1:],                               # too short
        [np.repeat(good[0], 2)[::2]] + good[1:],                 # not contiguous
        [good[0][:, None]] + good[1:],                           # 2-D
        [None] + good[1:],                                       # None for a non-empty list
        [list(good[0])] + good[1:],                              # not an array
    ]
    for norms in bad_cases:
        with pytest.raises(InvalidArgumentError):
            lists(norms)
    # spare capacity past the size is fine
    spare = lists([np.append(g, np.float32(np.nan)) for g in good])
    assert np.array_equal(_native.ivfpq_search(index.quant, spare, index.X.shape[0],
                                               index.X[:3], 5, 4)[0],
                          index.search(index.X[:3], 5, 4, norms=True)[0])
    # a NULL norms pointer for a non-empty list is refused by the C side (either metric)
    ok = lists(good)
    ok.ptr.norms[0] = ffi.NULL
    Q = index.X[:2]
    with pytest.raises(InvalidArgumentError):
        _native.ivfpq_search(index.quant, ok, index.X.shape[0], Q, 5, 4)
    ip = _native.Quantizer("pq", "ip", index.X.shape[1], index.quant.params, m=M)
    with pytest.raises(InvalidArgumentError):
        _native.ivfpq_search(ip, ok, index.X.shape[0], Q, 5, 4)
