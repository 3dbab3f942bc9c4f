"""The C HNSW graph through ``_native.Hnsw``: recall against exact search, determinism,
allow/deny bitsets (filtered traversal: recall per selectivity, correlated filters), work
counts (stats), edge cases, segmented rows, the checkpoint image (round trip, in-place load,
damage detection, fuzzed links), concurrent search during add, every SIMD level."""

from __future__ import annotations

import mmap
import struct
import threading

import numpy as np
import pytest

from conftest import bits_from_mask, clustered_vectors, exact_topk, recall_at_k
from vecdb import _native
from vecdb.errors import CorruptionError, FormatVersionError, InvalidArgumentError

SHIFT = 20  # one segment unless a test says otherwise


@pytest.fixture(scope="module")
def data():
    X, Q = clustered_vectors(10_000, 64, n_queries=100, seed=1)
    return X, Q


def build(X, metric="l2", *, m=16, efc=100, seed=0, n_threads=0, simd=None):
    g = _native.Hnsw.new(X.shape[1], metric, m=m, ef_construction=efc, seed=seed, simd=simd)
    g.add((X,), SHIFT, X.shape[0], n_threads=n_threads)
    return g


@pytest.fixture(scope="module")
def graph_l2(data):
    return build(data[0])


def normalized(a):
    return np.ascontiguousarray(a / np.linalg.norm(a, axis=1, keepdims=True), dtype=np.float32)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine-as-ip"])
def test_recall_against_exact(data, graph_l2, metric):
    X, Q = data
    if metric == "cosine-as-ip":
        X, Q, metric = normalized(X), normalized(Q), "ip"
    g = graph_l2 if metric == "l2" else build(X, metric)
    truth, tdist = exact_topk(X, Q, 10, metric)
    rows, dist = g.search((X,), SHIFT, X.shape[0], Q, 10, 64)
    assert recall_at_k(rows, truth) >= 0.95
    assert np.all(np.diff(dist, axis=1) >= 0)  # best first
    hit = rows == truth
    assert np.allclose(dist[hit], tdist[hit], rtol=1e-4, atol=1e-3)


def test_cosine_metric(data):
    X, Q = data
    X, Q = X[:3000], Q[:30]
    g = build(X, "cosine", efc=64)
    truth, _ = exact_topk(X, Q, 10, "cosine")
    rows, dist = g.search((X,), SHIFT, X.shape[0], Q, 10, 64)
    assert recall_at_k(rows, truth) >= 0.95
    exact = _native.flat_search([X], SHIFT, X.shape[0], Q, 10, "cosine")
    same = rows == exact[0]
    assert np.array_equal(dist[same], exact[1][same])  # same kernels, same distances


def test_distances_equal_flat_search(data, graph_l2):
    X, Q = data
    rows, dist = graph_l2.search((X,), SHIFT, X.shape[0], Q, 10, 100)
    frows, fdist = _native.flat_search([X], SHIFT, X.shape[0], Q, 10, "l2")
    same = rows == frows
    assert same.mean() > 0.9 and np.array_equal(dist[same], fdist[same])


def test_single_thread_build_is_deterministic(data):
    X = data[0][:2000]
    a, b = build(X, n_threads=1, seed=7), build(X, n_threads=1, seed=7)
    img_a, img_b = bytearray(a.serialized_size()), bytearray(b.serialized_size())
    a.serialize_into(img_a)
    b.serialize_into(img_b)
    assert img_a == img_b
    c = build(X, n_threads=1, seed=8)
    img_c = bytearray(c.serialized_size())
    c.serialize_into(img_c)
    assert img_c != img_a


def test_parallel_build_recall(data):
    X, Q = data[0][:5000], data[1]
    g = build(X, n_threads=2)
    assert g.n_nodes == 5000
    truth, _ = exact_topk(X, Q, 10, "l2")
    assert recall_at_k(g.search((X,), SHIFT, 5000, Q, 10, 64)[0], truth) >= 0.95



def unreachable_rows(X, g, copies):
    """Rows that a search for their own vector with a large ef does not return among the
    first `copies` results (the rows sharing that vector): rows no search can reach."""
    n = X.shape[0]
    rows, _ = g.search((X,), SHIFT, n, X, copies, 300, n_threads=2)
    return np.flatnonzero(~(rows == np.arange(n)[:, None]).any(axis=1))


@pytest.mark.parametrize("case", ["distinct", "duplicates"])
def test_parallel_build_leaves_every_node_reachable(case):
    # Two workers used to leave a few nodes unreachable: a node whose greedy descent ended on
    # a node still being inserted (linked above, level-0 record not written yet) got a one-link
    # list, and two copies of a vector inserted at once never linked to each other, so the
    # heuristic pruned one of them out of every list. A single-threaded build never does.
    if case == "distinct":
        X, _ = clustered_vectors(3000, 16, seed=13)
        copies, m, efc, seeds = 1, 6, 64, range(8)
    else:  # each vector three times in a row: the copies are inserted concurrently
        base, _ = clustered_vectors(1000, 16, seed=13)
        X = np.ascontiguousarray(np.repeat(base, 3, axis=0))
        copies, m, efc, seeds = 3, 8, 100, range(4)
    missed = {}
    for seed in seeds:
        g = build(X, m=m, efc=efc, seed=seed, n_threads=2)
        bad = unreachable_rows(X, g, copies)
        if bad.size:
            missed[seed] = bad.tolist()
    assert not missed


def test_deny_never_returned(data, graph_l2):
    X, Q = data
    n = X.shape[0]
    mask = np.random.default_rng(3).random(n) < 0.5  # True = denied
    rows, _ = graph_l2.search((X,), SHIFT, n, Q, 10, 64, deny=bits_from_mask(mask))
    assert not mask[rows[rows >= 0]].any()
    truth, _ = exact_topk(X, Q, 10, "l2", mask=~mask)
    assert recall_at_k(rows, truth) >= 0.9


def test_allow_ten_percent(data, graph_l2):
    X, Q = data
    n = X.shape[0]
    allowed = np.random.default_rng(4).random(n) < 0.1
    deny = np.zeros(n, bool)
    deny[np.flatnonzero(allowed)[:50]] = True  # tombstones inside the allowed set
    rows, _ = graph_l2.search((X,), SHIFT, n, Q, 10, 200, allow=bits_from_mask(allowed),
                              deny=bits_from_mask(deny))
    valid = rows[rows >= 0]
    assert allowed[valid].all() and not deny[valid].any()
    truth, _ = exact_topk(X, Q, 10, "l2", mask=allowed & ~deny)
    assert recall_at_k(rows, truth) >= 0.9


def test_allow_nothing_returns_no_rows(data, graph_l2):
    X, Q = data
    rows, dist = graph_l2.search((X,), SHIFT, X.shape[0], Q[:3], 5, 10,
                                 allow=bits_from_mask(np.zeros(X.shape[0], bool)))
    assert (rows == -1).all() and np.isinf(dist).all()


@pytest.mark.parametrize("share, ef", [(0.003, 64), (0.01, 64), (0.03, 64), (0.03, 128),
                                       (0.1, 64), (0.3, 64), (0.5, 64), (1.0, 64)])
def test_filtered_recall_per_selectivity(data, graph_l2, share, ef):
    """Random allow sets: recall at every share (below 2% the search routes through every
    node, from 2% it is the two-hop search, with ef widened below 5%)."""
    X, Q = data
    n = X.shape[0]
    allowed = np.random.default_rng(int(share * 1000)).random(n) < share
    rows, _ = graph_l2.search((X,), SHIFT, n, Q, 10, ef, allow=bits_from_mask(allowed))
    assert allowed[rows[rows >= 0]].all()
    truth, _ = exact_topk(X, Q, 10, "l2", mask=allowed)
    assert recall_at_k(rows, truth) >= 0.95


@pytest.fixture(scope="module")
def clusters():
    """50 clusters, the allow set = all rows of 5 of them (a filter correlated with the data)."""
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((50, 64)).astype(np.float32) * 3
    labels = rng.integers(0, 50, size=10_000)
    X = np.ascontiguousarray(centers[labels] + rng.standard_normal((10_000, 64)),
                             dtype=np.float32)
    g = build(X)
    allowed = labels < 5

    def near(rows):  # points around the given rows
        return (X[rows] + rng.standard_normal((len(rows), 64))).astype(np.float32)

    inside = near(rng.choice(np.flatnonzero(allowed), 50, replace=False))
    outside = near(rng.choice(np.flatnonzero(~allowed), 50, replace=False))
    return X, g, allowed, inside, outside


@pytest.mark.parametrize("where, ef, floor", [("inside", 64, 0.99), ("outside", 128, 0.95)])
def test_filtered_correlated_with_the_data(clusters, where, ef, floor):
    """Queries among the allowed clusters, and queries whose whole neighbourhood is excluded
    (the search walks out of it and also starts from the seeds)."""
    X, g, allowed, inside, outside = clusters
    Q = inside if where == "inside" else outside
    rows, _ = g.search((X,), SHIFT, X.shape[0], Q, 10, ef, allow=bits_from_mask(allowed))
    assert (rows >= 0).all() and allowed[rows].all()
    truth, _ = exact_topk(X, Q, 10, "l2", mask=allowed)
    assert recall_at_k(rows, truth) >= floor


def test_filtered_contiguous_block_and_tiny_sets(data, graph_l2):
    """An allow set that is one block of rows (e.g. a time range of rows added in order), and
    allow sets smaller than k: every eligible row the search returns is allowed, and with one
    block the seeds are spread inside it."""
    X, Q = data
    n = X.shape[0]
    block = np.zeros(n, bool)
    block[6000:7000] = True
    rows, _ = graph_l2.search((X,), SHIFT, n, Q, 10, 128, allow=bits_from_mask(block))
    assert (rows >= 0).all() and block[rows].all()
    truth, _ = exact_topk(X, Q, 10, "l2", mask=block)
    assert recall_at_k(rows, truth) >= 0.9
    for size in (1, 3, 64):
        tiny = np.zeros(n, bool)
        tiny[np.random.default_rng(size).choice(n, size, replace=False)] = True
        rows, _ = graph_l2.search((X,), SHIFT, n, Q[:5], 10, 64, allow=bits_from_mask(tiny))
        found = rows[rows >= 0]
        assert tiny[found].all() and (rows >= 0).sum(axis=1).max() <= size
        assert len(set(rows[0][rows[0] >= 0].tolist())) == (rows[0] >= 0).sum()  # distinct


def test_filtered_results_do_not_depend_on_threads(data, graph_l2):
    X, Q = data
    n = X.shape[0]
    allowed = np.random.default_rng(8).random(n) < 0.05
    allow = bits_from_mask(allowed)
    one, two = {}, {}
    a = graph_l2.search((X,), SHIFT, n, Q, 10, 64, allow=allow, n_threads=1, stats=one)
    b = graph_l2.search((X,), SHIFT, n, Q, 10, 64, allow=allow, n_threads=2, stats=two)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert one == two  # the same work, counted per query


def test_stats_are_plausible(data, graph_l2):
    X, Q = data
    n, nq = X.shape[0], Q.shape[0]
    plain = {}
    graph_l2.search((X,), SHIFT, n, Q, 10, 64, stats=plain)
    assert set(plain) == {"visited", "distances"}
    assert 0 < plain["visited"] <= plain["distances"] <= nq * n
    assert plain["visited"] >= nq  # every query expands its entry at least
    again = dict(plain)
    graph_l2.search((X,), SHIFT, n, Q, 10, 64, stats=again)
    assert again == {key: 2 * value for key, value in plain.items()}  # added, not reset
    for share in (0.01, 0.05):  # routing through every node; the two-hop search
        sparse = {"visited": 0, "other": "kept"}
        allowed = np.random.default_rng(2).random(n) < share
        graph_l2.search((X,), SHIFT, n, Q, 10, 64, allow=bits_from_mask(allowed), stats=sparse)
        assert sparse["other"] == "kept"
        assert sparse["visited"] > plain["visited"]  # a sparse filter reads more link lists
        assert 0 < sparse["distances"] <= nq * n and sparse["visited"] <= 2 * nq * n
    empty = {}
    g = _native.Hnsw.new(X.shape[1], "l2", m=8, ef_construction=10)
    g.search((), SHIFT, 0, Q, 3, 10, stats=empty)
    assert empty == {"visited": 0, "distances": 0}
    with pytest.raises(InvalidArgumentError):
        graph_l2.search((X,), SHIFT, n, Q, 10, 64, stats=[])


def test_k_larger_than_n():
    X, _ = clustered_vectors(30, 8, seed=2)
    g = build(X, m=4, efc=16)
    rows, dist = g.search((X,), SHIFT, 30, X[:4], 50, 10)
    assert rows.shape == (4, 50)
    for r, d in zip(rows, dist):
        found = r[r >= 0]
        # a graph need not reach every node, but nearly all of 30 are reached, each once
        assert len(found) >= 28 and len(set(found.tolist())) == len(found)
        assert (r[len(found):] == -1).all() and np.isinf(d[len(found):]).all()


def test_empty_graph_and_zero_k():
    g = _native.Hnsw.new(8, "l2", m=8, ef_construction=16)
    Q = np.zeros((2, 8), np.float32)
    rows, dist = g.search((), SHIFT, 0, Q, 3, 10)
    assert (rows == -1).all() and np.isinf(dist).all()
    assert g.n_nodes == 0 and g.serialized_size() > 0
    img = bytearray(g.serialized_size())
    g.serialize_into(img)
    assert _native.hnsw_verify(img)
    h = _native.Hnsw.load(img)
    assert h.n_nodes == 0
    X = np.ones((1, 8), np.float32)
    h.add((X,), SHIFT, 1)
    assert h.search((X,), SHIFT, 1, Q, 3, 10)[0].tolist() == [[0, -1, -1]] * 2
    assert g.search((), SHIFT, 0, Q, 0, 10)[0].shape == (2, 0)


def test_segments_with_small_shift(data):
    X, Q = data[0][:3000], data[1][:20]
    shift = 7  # 128 rows per segment, the last one partial
    segs = tuple(X[i:i + 128] for i in range(0, 3000, 128))
    g = _native.Hnsw.new(64, "l2", m=8, ef_construction=64, seed=1)
    g.add(segs, shift, 1000)
    g.add(list(segs), shift, 3000)  # a list is fine too (not cached)
    one = build(X, m=8, efc=64, seed=1)
    truth, _ = exact_topk(X, Q, 10, "l2")
    rows, dist = g.search(segs, shift, 3000, Q, 10, 64)
    assert recall_at_k(rows, truth) >= 0.95
    assert recall_at_k(one.search((X,), SHIFT, 3000, Q, 10, 64)[0], truth) >= 0.95


def test_search_sees_a_prefix_of_rows(data, graph_l2):
    X, Q = data
    rows, _ = graph_l2.search((X,), SHIFT, 2000, Q, 10, 64)  # fewer rows than nodes
    assert ((rows >= 0) & (rows < 2000)).all()


def serialized(g):
    img = bytearray(g.serialized_size())
    g.serialize_into(img)
    return img


def test_image_round_trip_bytearray_then_add(data):
    X, Q = data
    g = build(X[:4000], n_threads=1)
    img = serialized(g)
    assert _native.hnsw_verify(img)
    info = _native.hnsw_image_info(img)
    assert info == {"dim": 64, "metric": "l2", "m": 16, "ef_construction": 100, "seed": 0,
                    "n_nodes": 4000}
    h = _native.Hnsw.load(img)
    assert (h.n_nodes, h.dim, h.metric, h.m, h.ef_construction) == (4000, 64, "l2", 16, 100)
    a = g.search((X,), SHIFT, 4000, Q, 10, 50)
    b = h.search((X,), SHIFT, 4000, Q, 10, 50)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    h.add((X,), SHIFT, 10_000)  # grows past the image (a partial chunk becomes private)
    assert h.n_nodes == 10_000
    truth, _ = exact_topk(X, Q, 10, "l2")
    assert recall_at_k(h.search((X,), SHIFT, 10_000, Q, 10, 64)[0], truth) >= 0.95
    again = serialized(h)
    assert _native.hnsw_verify(again) and _native.hnsw_image_info(again)["n_nodes"] == 10_000
    h.close()
    h.close()  # idempotent
    with pytest.raises(InvalidArgumentError, match="closed"):
        h.search((X,), SHIFT, 10, Q, 1, 1)


def test_image_in_copy_on_write_mmap(tmp_path, data):
    X, Q = data
    g = build(X[:5000], n_threads=1)
    path = tmp_path / "g.hnsw"
    path.write_bytes(serialized(g))
    before = path.read_bytes()
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    h = _native.Hnsw.load(mm)
    a = g.search((X,), SHIFT, 5000, Q, 10, 40)
    b = h.search((X,), SHIFT, 5000, Q, 10, 40)
    assert np.array_equal(a[0], b[0])
    h.add((X,), SHIFT, 10_000, n_threads=2)  # writes links into the private mapping
    truth, _ = exact_topk(X, Q, 10, "l2")
    assert recall_at_k(h.search((X,), SHIFT, 10_000, Q, 10, 64)[0], truth) >= 0.95
    h.close()
    mm.close()  # close released the buffer
    assert path.read_bytes() == before  # the file never changes


def test_damaged_body_fails_verify_and_searches_survive(data):
    X, Q = data
    n = 3000
    g = build(X[:n], m=8, efc=40, n_threads=1)
    img = serialized(g)
    header = 160
    rng = np.random.default_rng(5)
    allowed = rng.random(n) < 0.05
    allow = bits_from_mask(allowed)
    pristine = bytes(img)
    flipped = bytearray(pristine)
    flipped[header + 100] ^= 0x10
    assert not _native.hnsw_verify(flipped)
    end = len(img)
    for trial in range(300):
        img[:] = pristine
        for _ in range(int(rng.integers(1, 40))):
            at = int(rng.integers(header, end))
            img[at] = int(rng.integers(0, 256))
        h = _native.Hnsw.load(img)  # the header is intact: loads
        rows, _ = h.search((X,), SHIFT, n, Q[:2], 5, 20)
        assert ((rows >= -1) & (rows < n)).all()
        rows, _ = h.search((X,), SHIFT, n, Q[:2], 5, 20, allow=allow)  # two-hop reads
        assert ((rows >= -1) & (rows < n)).all() and allowed[rows[rows >= 0]].all()
        if trial % 50 == 0:
            h.add((X,), SHIFT, n + 50)  # inserting over damaged links must not crash
            rows, _ = h.search((X,), SHIFT, n + 50, Q[:2], 5, 20)
            assert ((rows >= -1) & (rows < n + 50)).all()
        h.close()


def test_damaged_header_truncated_and_newer_version(data):
    X = data[0][:500]
    img = serialized(build(X, m=8, efc=32))
    for at in list(range(0, 160, 7)):
        bad = bytearray(img)
        bad[at] ^= 0x01
        if at in range(8, 12):  # the version field: raised to 2, 3 ... or lowered to 0
            version = struct.unpack_from("<I", bad, 8)[0]
            exc = FormatVersionError if version > 1 else CorruptionError
        else:
            exc = CorruptionError
        with pytest.raises(exc):
            _native.Hnsw.load(bad)
        with pytest.raises(exc):
            _native.hnsw_image_info(bad)
    for size in (0, 10, 159, 160, len(img) - 1):
        with pytest.raises(CorruptionError):
            _native.Hnsw.load(bytearray(img[:size]))
    newer = bytearray(img)
    struct.pack_into("<I", newer, 8, 2)
    with pytest.raises(FormatVersionError):
        _native.Hnsw.load(newer)
    with pytest.raises(FormatVersionError):
        _native.hnsw_verify(newer)
    assert not _native.hnsw_verify(img[:-8])
    with pytest.raises(InvalidArgumentError):
        _native.Hnsw.load(bytes(img))  # read-only buffer
    assert _native.hnsw_verify(bytes(img))  # verify reads any buffer


def test_search_during_add_from_threads(data):
    X, Q = data
    n0, n = 2000, 10_000
    g = build(X[:n0], m=8, efc=40)
    deny_mask = np.zeros(n, bool)
    deny_mask[::7] = True
    deny = bits_from_mask(deny_mask)
    allow_mask = np.random.default_rng(9).random(n) < 0.1
    allow = bits_from_mask(allow_mask)
    stop = threading.Event()
    errors = []

    def searcher(seed):
        rng = np.random.default_rng(seed)
        filtered = seed % 2 == 1
        try:
            while not stop.is_set():
                visible = int(rng.integers(n0, n + 1))
                rows, _ = g.search((X,), SHIFT, visible, Q[rng.integers(0, 100, 4)], 10, 32,
                                   deny=deny, allow=allow if filtered else None, n_threads=1)
                found = rows[rows >= 0]
                assert (found < visible).all() and not deny_mask[found].any()
                assert not filtered or allow_mask[found].all()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=searcher, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    try:
        for end in range(n0 + 1000, n + 1, 1000):
            g.add((X,), SHIFT, end, n_threads=2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert g.n_nodes == n


@pytest.mark.parametrize("simd", _native.simd_supported())
def test_every_simd_level(data, simd):
    X, Q = data[0][:2000], data[1][:30]
    g = build(X, m=8, efc=48, simd=simd)
    truth, _ = exact_topk(X, Q, 10, "l2")
    rows, dist = g.search((X,), SHIFT, 2000, Q, 10, 64)
    assert recall_at_k(rows, truth) >= 0.95
    h = _native.Hnsw.load(serialized(g), simd=simd)
    assert np.array_equal(h.search((X,), SHIFT, 2000, Q, 10, 64)[0], rows)


def test_argument_errors(data):
    X, Q = data
    with pytest.raises(InvalidArgumentError):
        _native.Hnsw.new(8, "hamming", m=8, ef_construction=10)
    with pytest.raises(InvalidArgumentError):
        _native.Hnsw.new(8, "l2", m=1, ef_construction=10)
    with pytest.raises(InvalidArgumentError):
        _native.Hnsw.new(0, "l2", m=8, ef_construction=10)
    g = _native.Hnsw.new(64, "l2", m=8, ef_construction=10)
    g.add((X,), SHIFT, 100)
    with pytest.raises(InvalidArgumentError):
        g.add((X,), SHIFT, 50)  # fewer rows than nodes
    with pytest.raises(InvalidArgumentError):
        g.search((X,), SHIFT, 100, Q[:, :32].copy(), 1, 1)
    with pytest.raises(InvalidArgumentError):
        g.search((X[:50],), SHIFT, 100, Q, 1, 1)  # a segment shorter than its visible rows
    with pytest.raises(InvalidArgumentError):
        g.serialize_into(bytearray(g.serialized_size() + 8))
    assert g.memory_bytes > 0


# -- search on codes (vdb_hnsw_search_codes): the same traversal, ADC distances ----------------

@pytest.fixture(scope="module")
def sq8(data):
    X = data[0]
    q = _native.Quantizer("sq8", "l2", X.shape[1], _native.sq8_train(X))
    return q, q.encode(X)


@pytest.fixture(scope="module")
def pq(data):
    X = data[0]
    params = _native.pq_train(X[::2].copy(), 16, iters=8, seed=1)
    q = _native.Quantizer("pq", "l2", X.shape[1], params, m=16)
    return q, q.encode(X)


def two_stage(g, X, Q, quant, codes, k, n_cand, ef, **kw):
    """search_codes for n_cand candidates, then the exact top-k of them (rescore)."""
    n = X.shape[0]
    cand, _ = g.search_codes(quant, (codes,), SHIFT, n, Q, n_cand, ef, **kw)
    return _native.rescore((X,), SHIFT, n, Q, cand, k, quant.metric)


@pytest.mark.parametrize("kind, n_cand, ef", [("sq8", 20, 64), ("pq", 100, 128)])
def test_codes_recall_after_rescore(data, graph_l2, sq8, pq, kind, n_cand, ef):
    X, Q = data
    quant, codes = sq8 if kind == "sq8" else pq
    truth, tdist = exact_topk(X, Q, 10, "l2")
    rows, dist = two_stage(graph_l2, X, Q, quant, codes, 10, n_cand, ef)
    assert recall_at_k(rows, truth) >= 0.95
    frows, fdist = _native.flat_search([X], SHIFT, X.shape[0], Q, 10, "l2")
    same = rows == frows
    assert np.array_equal(dist[same], fdist[same])  # rescored: exact distances


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_codes_distances_are_the_quantizers(data, graph_l2, sq8, pq, kind):
    X, Q = data
    quant, codes = sq8 if kind == "sq8" else pq
    rows, dist = graph_l2.search_codes(quant, (codes,), SHIFT, X.shape[0], Q, 10, 64)
    assert (rows >= 0).all() and np.all(np.diff(dist, axis=1) >= 0)
    for i in range(Q.shape[0]):
        assert np.array_equal(dist[i], quant.distances(Q[i], codes[rows[i]]))
        assert len(set(rows[i].tolist())) == 10


def test_codes_search_follows_the_float_search_on_decoded_rows(data, graph_l2, pq):
    """The same traversal: searching PQ codes gives what a float search over the decoded rows
    gives through the same graph (ADC equals the decoded distance up to rounding)."""
    X, Q = data
    quant, codes = pq
    decoded = quant.decode(codes)
    a, da = graph_l2.search_codes(quant, (codes,), SHIFT, X.shape[0], Q, 10, 64)
    b, db = graph_l2.search((decoded,), SHIFT, X.shape[0], Q, 10, 64)
    assert (a == b).mean() >= 0.97
    np.testing.assert_allclose(da, db, rtol=1e-4, atol=1e-3 * float(np.abs(db).max()))


@pytest.mark.parametrize("share", [0.01, 0.1, 0.7])  # route all / two-hop / route all
def test_codes_allow_and_deny(data, graph_l2, sq8, share):
    X, Q = data
    quant, codes = sq8
    n = X.shape[0]
    rng = np.random.default_rng(int(share * 100))
    allowed = rng.random(n) < share
    denied = rng.random(n) < 0.2
    stats = {}
    cand, _ = graph_l2.search_codes(quant, (codes,), SHIFT, n, Q, 30, 128,
                                    allow=bits_from_mask(allowed), deny=bits_from_mask(denied),
                                    stats=stats)
    found = cand[cand >= 0]
    assert found.size > 0 and allowed[found].all() and not denied[found].any()
    assert stats["visited"] > 0 and stats["distances"] > 0
    rows, _ = _native.rescore((X,), SHIFT, n, Q, cand, 10, "l2")
    truth, _ = exact_topk(X, Q, 10, "l2", mask=allowed & ~denied)
    assert recall_at_k(rows, truth) >= 0.9
    nothing = bits_from_mask(np.zeros(n, bool))
    rows, dist = graph_l2.search_codes(quant, (codes,), SHIFT, n, Q[:3], 5, 16, allow=nothing)
    assert (rows == -1).all() and np.isinf(dist).all()


@pytest.mark.parametrize("filtered", [False, True])
def test_codes_results_do_not_depend_on_threads(data, graph_l2, pq, filtered):
    X, Q = data
    quant, codes = pq
    n = X.shape[0]
    kw = {"allow": bits_from_mask(np.random.default_rng(5).random(n) < 0.1)} if filtered else {}
    one, many = {}, {}
    a = graph_l2.search_codes(quant, (codes,), SHIFT, n, Q, 10, 64, n_threads=1, stats=one, **kw)
    b = graph_l2.search_codes(quant, (codes,), SHIFT, n, Q, 10, 64, n_threads=3, stats=many,
                              **kw)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert one == many


def test_codes_segments_prefix_and_levels(data, graph_l2, sq8):
    X, Q = data
    quant, codes = sq8
    n = X.shape[0]
    whole = graph_l2.search_codes(quant, (codes,), SHIFT, n, Q, 10, 64)
    shift = 10
    segs = [codes[i: i + (1 << shift)] for i in range(0, n, 1 << shift)]
    np.testing.assert_array_equal(graph_l2.search_codes(quant, segs, shift, n, Q, 10, 64)[0],
                                  whole[0])
    part, _ = graph_l2.search_codes(quant, (codes,), SHIFT, 4000, Q, 10, 64)
    assert (part >= 0).all() and (part < 4000).all()
    for simd in _native.simd_supported():  # SQ8 ADC is exact integer arithmetic on every level
        r, d = graph_l2.search_codes(quant, (codes,), SHIFT, n, Q, 10, 64, simd=simd)
        np.testing.assert_array_equal(r, whole[0])
        np.testing.assert_array_equal(d, whole[1])


def test_codes_ip_and_cosine_graphs(data):
    X, Q = data[0][:3000], data[1][:30]
    for metric in ("ip", "cosine"):
        g = build(X, metric, efc=64)
        quant = _native.Quantizer("sq8", metric, X.shape[1], _native.sq8_train(X))
        codes = quant.encode(X)
        rows, dist = two_stage(g, X, Q, quant, codes, 10, 30, 64)
        truth, _ = exact_topk(X, Q, 10, metric)
        assert recall_at_k(rows, truth) >= 0.95
    # the quantizer's metric may differ from the graph's: over unit vectors L2 codes order
    # rows as cosine does, so a cosine graph traverses with L2 codes
    U, V = normalized(X), normalized(Q)
    g = build(U, "cosine", efc=64)
    quant = _native.Quantizer("sq8", "l2", U.shape[1], _native.sq8_train(U))
    cand, _ = g.search_codes(quant, (quant.encode(U),), SHIFT, U.shape[0], V, 30, 64)
    rows, _ = _native.rescore((U,), SHIFT, U.shape[0], V, cand, 10, "cosine")
    assert recall_at_k(rows, exact_topk(U, V, 10, "cosine")[0]) >= 0.95


def test_codes_argument_errors(data, graph_l2, sq8, pq):
    X, Q = data
    quant, codes = sq8
    n = X.shape[0]
    with pytest.raises(InvalidArgumentError):  # codes of another quantizer (code size)
        graph_l2.search_codes(quant, (pq[1],), SHIFT, n, Q, 10, 64)
    with pytest.raises(InvalidArgumentError):
        graph_l2.search_codes(quant, (codes[:100],), SHIFT, n, Q, 10, 64)
    with pytest.raises(InvalidArgumentError):
        graph_l2.search_codes(quant, (codes,), SHIFT, n, Q[:, :32].copy(), 10, 64)
    small = _native.Quantizer("sq8", "l2", 32, _native.sq8_train(X[:, :32].copy()))
    with pytest.raises(InvalidArgumentError):  # dim
        graph_l2.search_codes(small, (small.encode(X[:, :32].copy()),), SHIFT, n, Q, 10, 64)
    empty = _native.Hnsw.new(X.shape[1], "l2", m=8, ef_construction=10)
    rows, dist = empty.search_codes(quant, (), SHIFT, 0, Q[:2], 3, 10)
    assert (rows == -1).all() and np.isinf(dist).all()
