"""HNSW over quantized codes (vecdb.SQ8 / vecdb.PQ) through the collection API: recall after
rescoring, exact distances, when training happens, stats, checkpoints (codes.vdbq), damage,
the rescore knob, config checks, optimize() and drift, filters, deletes, vacuum, readers.

Train sizes are small (SQ8: 2,000 rows, PQ: 3,000) so that every test trains for real in a
few hundred milliseconds on a few thousand clustered rows of dim 32.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import vecdb
from conftest import (add_in_batches, assert_exact_distances, clustered_vectors, during,
                      exact_topk, flip_bytes, recall_at_k, result_ids)
from vecdb.index import codes as codes_module
from vecdb.query import planner

DIM = 32
FAST = vecdb.HNSW(m=16, ef_construction=100)  # quicker builds; recall stays high at dim 32


def quant(kind: str):
    return {"sq8": vecdb.SQ8(train_size=2000), "pq": vecdb.PQ(m=8, train_size=3000)}[kind]


def expected_code_bytes(kind: str, metric: str, dim: int = DIM, m: int = 8) -> int:
    if kind == "pq":
        return m
    return dim + 4 if metric == "l2" else dim


@pytest.fixture
def graph_always(monkeypatch):
    """Every query with k < eligible rows goes to the index, however small the collection
    (the planner otherwise scans collections below 4,096 rows exactly)."""
    monkeypatch.setattr(planner, "EXACT_SCAN_BELOW", 0)




def _qstats(col) -> dict:
    return col.stats()["index"]["quantization"]




def _codes_files(db_path):
    return sorted((db_path / "collections").glob("*/codes.vdbq"))




# -- recall and exact distances ----------------------------------------------------------------


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_recall_and_exact_distances_after_rescoring(db, kind, metric):
    X, Q = clustered_vectors(8000, DIM, n_queries=100, seed=1)
    # PQ with 2 dims per code byte: at m=8 (4 dims per byte) the unit-normalized (cosine)
    # clustered rows are too close together for rescore=10 to reach 0.95 even with an
    # exhaustive ADC scan (0.91); test_graph_on_codes_matches_exhaustive_adc covers m=8
    q = vecdb.SQ8(train_size=2000) if kind == "sq8" else vecdb.PQ(m=16, train_size=3000)
    col = db.create_collection("c", dim=DIM, metric=metric, index=FAST, quantization=q)
    assert col.quantization == q
    add_in_batches(col, X, 0, 8000, 2000)
    qs = _qstats(col)
    assert qs["trained"] and qs["encoded_rows"] == 8000 and qs["trainings"] == 1
    truth, _ = exact_topk(X, Q, 10, metric)
    results = col.query(Q, k=10)
    assert all(len(r) == 10 for r in results)
    assert recall_at_k(result_ids(results), truth) >= 0.95
    # rescoring: the distances are the float32 ones, not ADC approximations
    assert_exact_distances(results, X, Q, metric)
    for r in results:
        assert list(r.distances) == sorted(r.distances)
    report = col.query(Q[:5], k=10, explain=True)[0].explain
    assert report["plan"] == "hnsw"
    assert report["rescored"] == 5 * 10 * q.rescore  # k * rescore candidates per query


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_graph_on_codes_matches_exhaustive_adc(db, kind):
    """The traversal of the codes loses (almost) nothing against a scan of every code: the
    result equals the exact rescoring of the k * rescore best rows by ADC distance, which
    is recomputed here with the collection's own quantizer over all its codes."""
    X, Q = clustered_vectors(8000, DIM, n_queries=100, seed=15)
    q = quant(kind)
    col = db.create_collection("c", dim=DIM, metric="cosine", index=FAST, quantization=q)
    add_in_batches(col, X, 0, 8000, 4000)
    state = col._rows.index.codes._state
    codes = np.ascontiguousarray(np.concatenate(state.segments)[:8000])
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Qn = (Q / np.linalg.norm(Q, axis=1, keepdims=True)).astype(np.float32)
    true = 1.0 - Qn.astype(np.float64) @ Xn.T.astype(np.float64)
    k, n_cand = 10, 10 * q.rescore
    reference = []
    for i, qv in enumerate(Qn):
        adc = state.quantizer.distances(np.ascontiguousarray(qv), codes)
        cand = np.argsort(adc, kind="stable")[:n_cand]
        reference.append(cand[np.argsort(true[i, cand], kind="stable")[:k]])
    truth, _ = exact_topk(X, Q, k, "cosine")
    ref_recall = recall_at_k(np.array(reference), truth)
    found = result_ids(col.query(Q, k=k))
    assert recall_at_k(found, truth) >= ref_recall - 0.02, (recall_at_k(found, truth), ref_recall)
    same = np.mean([len(set(f) & set(r)) / k for f, r in zip(found.tolist(), reference)])
    assert same >= 0.97, same


# -- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_training_happens_on_the_batch_that_reaches_train_size(db, graph_always, kind):
    q = quant(kind)
    ts = q.train_size
    first, trained_at, total = ts - 500, ts + 1000, ts + 1500
    X, Q = clustered_vectors(total, DIM, n_queries=50, seed=2)
    col = db.create_collection("c", dim=DIM, metric="l2", index=FAST, quantization=q)

    add_in_batches(col, X, 0, first)
    st = col.stats()
    qs = st["index"]["quantization"]
    assert (qs["trained"], qs["encoded_rows"], qs["trainings"]) == (False, 0, 0)
    assert st["code_bytes_per_vector"] == 4 * DIM  # the graph still reads float32
    report = col.query(Q[:3], k=10, explain=True)[0].explain
    assert report["plan"] == "hnsw" and report["rescored"] == 0

    add_in_batches(col, X, first, trained_at)  # this batch crosses train_size: trained on it
    st = col.stats()
    qs = st["index"]["quantization"]
    assert qs["trained"] and qs["trainings"] == 1
    assert qs["trained_rows"] == trained_at and qs["encoded_rows"] == trained_at
    assert st["code_bytes_per_vector"] == expected_code_bytes(kind, "l2")

    add_in_batches(col, X, trained_at, total)  # encoded on add, no new training
    qs = _qstats(col)
    assert qs["trainings"] == 1 and qs["trained_rows"] == trained_at
    assert qs["encoded_rows"] == total == col.count()

    # rows from before training, from the training batch and from after are all found
    for i in (0, 17, first - 1, first, trained_at - 1, trained_at, total - 1):
        res = col.query(X[i], k=3)
        assert res[0].id == i and abs(res[0].distance) < 1e-3, (i, res.ids.tolist())
    truth, _ = exact_topk(X, Q, 10, "l2")
    results = col.query(Q, k=10)
    assert recall_at_k(result_ids(results), truth) >= 0.95
    assert_exact_distances(results, X, Q, "l2")
    assert col.query(Q[:2], k=10, explain=True)[0].explain["rescored"] > 0


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_code_and_graph_bytes_per_vector(db, metric):
    dim = 16
    X, _ = clustered_vectors(700, dim, seed=3)
    setups = {
        "plain": (None, 4 * dim),
        "sq8": (vecdb.SQ8(train_size=300), expected_code_bytes("sq8", metric, dim)),
        "pq": (vecdb.PQ(m=4, train_size=300), 4),
    }
    for name, (q, want) in setups.items():
        col = db.create_collection(name, dim=dim, metric=metric, quantization=q)
        col.add(ids=list(range(200)), vectors=X[:200])  # below train_size: float32
        st = col.stats()
        assert st["code_bytes_per_vector"] == 4 * dim, name
        assert st["graph_bytes_per_vector"] > 0, name
        col.add(ids=list(range(200, 700)), vectors=X[200:])
        st = col.stats()
        assert st["code_bytes_per_vector"] == want, name
        assert st["graph_bytes_per_vector"] > 0, name
        assert st["graph_bytes_per_vector"] == pytest.approx(
            st["index"]["graph_bytes"] / st["index"]["nodes"]), name
        if q is not None:
            assert st["index"]["quantization"]["code_size"] == want
    flat = db.create_collection("flat", dim=dim, metric=metric, index=vecdb.Flat())
    flat.add(ids=list(range(700)), vectors=X)
    st = flat.stats()
    assert st["code_bytes_per_vector"] == 4 * dim and st["graph_bytes_per_vector"] == 0


# -- persistence and damage ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_reopen_keeps_codes_without_retraining(db_path, graph_always, kind):
    X, Q = clustered_vectors(5500, DIM, n_queries=40, seed=4)
    q = quant(kind)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="cosine", index=FAST, quantization=q)
        add_in_batches(col, X, 0, 4000)       # trains (and checkpoints) here
        add_in_batches(col, X, 4000, 5000)    # encoded after training; checkpointed at close
        before = col.query(Q, k=10)
        assert _qstats(col)["trainings"] == 1
    assert len(_codes_files(db_path)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a retraining (or graph rebuild) would warn
        with vecdb.open(db_path) as db:
            col = db.get_collection("c")
            assert col.quantization == q
            qs = _qstats(col)
            assert qs["trained"] and qs["trainings"] == 0
            assert qs["encoded_rows"] == 5000 and qs["trained_rows"] == 4000
            assert col.stats()["code_bytes_per_vector"] == expected_code_bytes(kind, "cosine")
            after = col.query(Q, k=10)
            assert [r.ids.tolist() for r in after] == [r.ids.tolist() for r in before]
            for a, b in zip(after, before):
                np.testing.assert_allclose(a.distances, b.distances, rtol=1e-6, atol=1e-7)
            assert col.query(Q[:2], k=10, explain=True)[0].explain["rescored"] > 0
            add_in_batches(col, X, 5000, 5500)
            qs = _qstats(col)
            assert qs["encoded_rows"] == 5500 and qs["trainings"] == 0
            assert col.query(X[5400], k=3)[0].id == 5400
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with vecdb.open(db_path, readonly=True) as db:
            col = db.get_collection("c")
            assert _qstats(col)["trainings"] == 0 and _qstats(col)["encoded_rows"] == 5500


@pytest.mark.parametrize("readonly", [False, True])
def test_missing_graph_checkpoint_does_not_retrain_codes(db_path, graph_always, readonly):
    """The graph is rebuilt (read-only: built in memory) from the rows, but the codes
    checkpoint is sound: it is loaded, not trained again (nor overwritten)."""
    X, Q = clustered_vectors(5000, DIM, n_queries=30, seed=16)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=FAST,
                                   quantization=quant("pq"))
        add_in_batches(col, X, 0, 3500)     # trained on 3,500 rows
        add_in_batches(col, X, 3500, 5000)  # encoded with that quantizer
    os.remove(next((db_path / "collections").glob("*/hnsw.graph")))
    (codes_file,) = _codes_files(db_path)
    saved = codes_file.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "the graph checkpoint is missing"
        db = vecdb.open(db_path, readonly=readonly)
        try:
            col = db.get_collection("c")
            qs = _qstats(col)
            assert qs["trained"] and qs["encoded_rows"] == 5000
            assert qs["trainings"] == 0, "a sound codes checkpoint was trained again"
            assert qs["trained_rows"] == 3500, "the checkpoint's quantizer was replaced"
            assert col.query(X[42], k=3)[0].id == 42
        finally:
            db.close()
    assert codes_file.read_bytes() == saved, "the codes checkpoint was rewritten"


@pytest.mark.parametrize("kind", ["sq8", "pq"])
@pytest.mark.parametrize("where", ["header", "body"])
def test_damaged_codes_checkpoint_warns_and_retrains(db_path, graph_always, kind, where):
    X, Q = clustered_vectors(5000, DIM, n_queries=50, seed=5)
    truth, _ = exact_topk(X, Q, 10, "l2")
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=FAST,
                                   quantization=quant(kind))
        add_in_batches(col, X, 0, 5000)
        recall_before = recall_at_k(result_ids(col.query(Q, k=10)), truth)
    (codes_file,) = _codes_files(db_path)
    size = codes_file.stat().st_size
    flip_bytes(codes_file, 8 if where == "header" else size // 2)
    db = vecdb.open(db_path)
    try:
        with pytest.warns(RuntimeWarning, match="codes"):
            col = db.get_collection("c")
            col.query(Q[0], k=10)
        qs = _qstats(col)
        assert qs["trained"] and qs["trainings"] == 1 and qs["encoded_rows"] == 5000
        results = col.query(Q, k=10)
        assert recall_at_k(result_ids(results), truth) >= min(0.95, recall_before - 0.02)
        assert_exact_distances(results, X, Q, "l2")
    finally:
        db.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the retrained checkpoint was written and is sound
        with vecdb.open(db_path) as db:
            col = db.get_collection("c")
            assert _qstats(col)["trainings"] == 0 and _qstats(col)["encoded_rows"] == 5000
            assert col.query(X[123], k=1)[0].id == 123


# -- knobs and configs -------------------------------------------------------------------------


def test_rescore_knob(db, graph_always):
    X, Q = clustered_vectors(6000, DIM, n_queries=100, seed=6)
    # coarse codes (8 dims per byte): the ADC order alone is poor, rescoring repairs it
    col = db.create_collection("c", dim=DIM, metric="l2", index=FAST,
                               quantization=vecdb.PQ(m=4, rescore=10, train_size=3000))
    add_in_batches(col, X, 0, 6000, 3000)
    truth, _ = exact_topk(X, Q, 10, "l2")
    recalls = {}
    for r in (1, 5, 20):
        results = col.query(Q, k=10, rescore=r)
        recalls[r] = recall_at_k(result_ids(results), truth)
        assert_exact_distances(results, X, Q, "l2")
        report = col.query(Q[:4], k=10, rescore=r, explain=True)[0].explain
        assert report["rescored"] == 4 * 10 * r
    assert recalls[20] >= 0.95
    assert recalls[5] >= recalls[1] - 0.01 and recalls[20] >= recalls[5] - 0.01
    assert recalls[20] > recalls[1], recalls  # the knob is used
    for bad in (0, -1, 1.5, "x", True):
        with pytest.raises(vecdb.InvalidArgumentError, match="rescore"):
            col.query(Q[0], k=10, rescore=bad)


def test_knobs_rejected_where_unsupported(db):
    X, _ = clustered_vectors(300, 8, seed=7)
    plain = db.create_collection("plain", dim=8, metric="l2")
    flat = db.create_collection("flat", dim=8, metric="l2", index=vecdb.Flat())
    sq8 = db.create_collection("sq8", dim=8, metric="l2", quantization=vecdb.SQ8(train_size=100))
    for col in (plain, flat, sq8):
        col.add(ids=list(range(300)), vectors=X)
    for col in (plain, flat):
        with pytest.raises(vecdb.InvalidArgumentError, match="rescore"):
            col.query(X[0], k=5, rescore=2)
    for col in (plain, flat, sq8):
        with pytest.raises(vecdb.InvalidArgumentError, match="nprobe"):
            col.query(X[0], k=5, nprobe=2)
    assert sq8.query(X[3], k=5, rescore=3)[0].id == 3


@pytest.mark.parametrize("kwargs,word", [
    (lambda: {"quantization": vecdb.PQ(m=7)}, "quantization"),          # 7 does not divide 32
    (lambda: {"quantization": vecdb.PQ(m=64)}, "quantization"),         # m > dim
    (lambda: {"quantization": vecdb.SQ8(), "index": vecdb.Flat()}, "quantization"),
    (lambda: {"quantization": vecdb.PQ(m=8), "index": vecdb.IVFPQ(nlist=8, m=8)},
     "quantization"),
    (lambda: {"quantization": vecdb.SQ8(rescore=0)}, "rescore"),
    (lambda: {"quantization": vecdb.PQ(m=8, rescore=0)}, "rescore"),
    (lambda: {"quantization": vecdb.PQ(m=8, train_size=100)}, "train_size"),  # < 256
    (lambda: {"quantization": vecdb.SQ8(train_size=0)}, "train_size"),
    (lambda: {"quantization": "sq8"}, "quantization"),
    (lambda: {"quantization": vecdb.HNSW()}, "quantization"),
    (lambda: {"index": vecdb.IVFPQ(nlist=8, m=7)}, "m"),
], ids=["pq-m-7", "pq-m-64", "flat", "ivfpq", "sq8-rescore-0", "pq-rescore-0",
        "pq-train-100", "sq8-train-0", "string", "hnsw-as-quant", "ivfpq-m-7"])
def test_bad_quantization_configs_raise_and_create_nothing(db, db_path, kwargs, word):
    with pytest.raises(vecdb.InvalidArgumentError, match=word):
        db.create_collection("c", dim=DIM, metric="l2", **kwargs())
    assert db.list_collections() == []
    with pytest.raises(vecdb.CollectionNotFoundError):
        db.get_collection("c")
    coll_dir = db_path / "collections"
    assert not coll_dir.exists() or not any(coll_dir.iterdir())
    col = db.create_collection("c", dim=DIM, metric="l2", quantization=vecdb.PQ(m=8))
    assert col.quantization == vecdb.PQ(m=8) and col.count() == 0


# -- optimize ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_optimize_trains_an_untrained_collection(db_path, graph_always, kind):
    X, Q = clustered_vectors(3500, DIM, n_queries=50, seed=8)
    q = vecdb.SQ8(train_size=50_000) if kind == "sq8" else vecdb.PQ(m=8, train_size=50_000)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=FAST, quantization=q)
        if kind == "pq":  # PQ needs 256 rows for its 256 centroids
            col.add(ids=list(range(100)), vectors=X[:100])
            report = col.optimize()
            assert report["trained"] is False and not _qstats(col)["trained"]
            add_in_batches(col, X, 100, 3000)
        else:
            add_in_batches(col, X, 0, 3000)
        assert not _qstats(col)["trained"]
        report = col.optimize()
        assert report["trained"] is True and report["rows"] == 3000
        qs = _qstats(col)
        assert qs["trained"] and qs["trainings"] == 1 and qs["encoded_rows"] == 3000
        assert col.stats()["code_bytes_per_vector"] == expected_code_bytes(kind, "l2")
        truth, _ = exact_topk(X[:3000], Q, 10, "l2")
        results = col.query(Q, k=10, explain=True)
        assert results[0].explain["rescored"] > 0
        assert recall_at_k(result_ids(results), truth) >= 0.95
        assert_exact_distances(results, X, Q, "l2")
        again = col.optimize()
        assert again["trained"] is False and _qstats(col)["trainings"] == 1
        add_in_batches(col, X, 3000, 3500)  # trained: new rows are encoded on add
        assert _qstats(col)["encoded_rows"] == 3500
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with vecdb.open(db_path) as db:  # trained below train_size, and that was kept
            qs = _qstats(db.get_collection("c"))
            assert qs["trained"] and qs["trainings"] == 0 and qs["encoded_rows"] == 3500


def test_optimize_on_collections_without_codes(db):
    X, _ = clustered_vectors(500, 8, seed=9)
    plain = db.create_collection("plain", dim=8, metric="l2")
    flat = db.create_collection("flat", dim=8, metric="l2", index=vecdb.Flat())
    for col in (plain, flat):
        col.add(ids=list(range(500)), vectors=X)
        assert col.optimize()["trained"] is False
        assert col.query(X[7], k=1)[0].id == 7


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_optimize_retrains_on_drift_only(db, graph_always, kind):
    X, Q = clustered_vectors(8000, DIM, n_queries=50, seed=10)
    X[6000:] += 10.0  # the last 2,000 rows come from a shifted distribution
    Qs = Q + 10.0
    col = db.create_collection("c", dim=DIM, metric="l2", index=FAST, quantization=quant(kind))
    add_in_batches(col, X, 0, 4000)
    assert _qstats(col)["trainings"] == 1
    add_in_batches(col, X, 4000, 6000)  # 2,000 more rows of the same distribution: no drift
    report = col.optimize()
    assert report["trained"] is False, report
    assert _qstats(col)["trainings"] == 1
    add_in_batches(col, X, 6000, 8000)  # 2,000 rows shifted by +10 in every dimension: drift
    report = col.optimize()
    assert report["trained"] is True and report["rows"] == 8000, report
    qs = _qstats(col)
    assert qs["trainings"] == 2 and qs["trained_rows"] == 8000 and qs["encoded_rows"] == 8000
    assert col.optimize()["trained"] is False  # the new codes fit
    assert col.optimize(force=True)["trained"] is True
    assert _qstats(col)["trainings"] == 3
    truth, _ = exact_topk(X, np.vstack([Q, Qs]), 10, "l2")
    results = col.query(np.vstack([Q, Qs]), k=10)
    assert recall_at_k(result_ids(results), truth) >= 0.95
    assert_exact_distances(results, X, np.vstack([Q, Qs]), "l2")


# -- filters, deletes, vacuum, readers -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_filtered_queries_return_only_matches(db, graph_always, kind):
    n = 6000
    X, Q = clustered_vectors(n, DIM, n_queries=40, seed=11)
    col = db.create_collection("c", dim=DIM, metric="l2", index=FAST, quantization=quant(kind))
    col.add(ids=list(range(n)), vectors=X,
            metadatas=[{"c": i % 10, "rare": i % 100 == 7, "i": i} for i in range(n)])
    assert _qstats(col)["trained"]
    ids = np.arange(n)
    cases = [({"c": {"$lt": 8}}, ids % 10 < 8, 0.95),      # broad: filtered traversal
             ({"c": {"$lt": 5}}, ids % 10 < 5, 0.95),
             ({"c": {"$in": [2, 5]}}, np.isin(ids % 10, [2, 5]), 0.9),
             ({"rare": True}, ids % 100 == 7, 0.9),         # 60 rows
             ({"i": {"$lt": 4}}, ids < 4, 1.0)]              # fewer than k
    for where, mask, floor in cases:
        truth, _ = exact_topk(X, Q, 10, "l2", mask=mask)
        results = col.query(Q, k=10, where=where)
        want = min(10, int(mask.sum()))
        for r in results:
            assert len(r) == want, where
            assert mask[np.asarray(r.ids, dtype=np.int64)].all(), where
        found = np.array([r.ids.tolist() for r in results])
        assert recall_at_k(found, truth[:, :want]) >= floor, where
        assert_exact_distances(results, X, Q, "l2")
    report = col.query(Q[:4], k=10, where={"c": {"$lt": 8}}, explain=True)[0].explain
    assert report["plan"] == "hnsw" and report["rescored"] > 0


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_deletes_and_vacuum(db_path, graph_always, kind):
    n = 7000
    X, Q = clustered_vectors(n + 1, DIM, n_queries=50, seed=12)
    X, extra = X[:n], X[n:]
    with vecdb.open(db_path, auto_vacuum=None) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=FAST,
                                   quantization=quant(kind))
        add_in_batches(col, X, 0, n, 3500)
        deleted = list(range(0, n, 3))
        col.delete(deleted)
        alive = np.ones(n, bool)
        alive[deleted] = False
        # upserts move a few live ids onto other (in-distribution) points
        moved = list(range(1, n, 300))
        targets = X[[(i + 3500) % n for i in moved]] + 0.01
        col.upsert(ids=moved, vectors=targets)
        X = X.copy()
        old_moved = X[moved].copy()
        X[moved] = targets
        truth, _ = exact_topk(X, Q, 10, "l2", mask=alive)
        results = col.query(np.vstack([Q, X[deleted[:20]]]), k=10)
        for r in results:
            assert len(r) == 10 and not set(r.ids.tolist()) & set(deleted)
        assert recall_at_k(result_ids(results[:len(Q)]), truth) >= 0.95
        assert_exact_distances(results, X, np.vstack([Q, X[deleted[:20]]]), "l2")
        for j in (0, 5, 10):
            assert col.query(targets[j], k=1)[0].id == moved[j]
            hits = col.query(old_moved[j], k=10)  # the replaced vector is never returned
            assert all(h.distance > 1e-3 for h in hits if h.id == moved[j])
        assert _qstats(col)["encoded_rows"] == n + len(moved)

        trained = _qstats(col)
        report = col.vacuum()
        assert report["removed"] == len(deleted) + len(moved)
        st = col.stats()
        live = int(alive.sum())
        assert (st["generation"], st["rows"], st["live"]) == (1, live, live)
        qs = st["index"]["quantization"]
        assert qs["trained"] and qs["encoded_rows"] == live
        # the new generation keeps the trained quantizer: no training, same statistics
        assert qs["trainings"] == 0 and qs["trained_rows"] == trained["trained_rows"]
        assert qs["train_error"] == trained["train_error"]
        assert st["code_bytes_per_vector"] == expected_code_bytes(kind, "l2")
        files = _codes_files(db_path)
        assert len(files) == 1 and files[0].parent.name.endswith(".v1")
        results = col.query(Q, k=10, explain=True)
        assert results[0].explain["rescored"] > 0
        assert recall_at_k(result_ids(results), truth) >= 0.95
        assert_exact_distances(results, X, Q, "l2")
        col.add(ids=[n], vectors=extra)  # encoded on add in the new generation
        assert _qstats(col)["encoded_rows"] == live + 1
        assert col.query(extra[0], k=1)[0].id == n
        before = [r.ids.tolist() for r in col.query(Q, k=10)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with vecdb.open(db_path) as db:
            col = db.get_collection("c")
            qs = _qstats(col)
            assert qs["trainings"] == 0 and qs["encoded_rows"] == live + 1
            assert [r.ids.tolist() for r in col.query(Q, k=10)] == before


def test_readonly_handle_sees_new_rows_and_answers_with_codes(db_path, graph_always):
    X, Q = clustered_vectors(6000, DIM, n_queries=30, seed=13)
    truth, _ = exact_topk(X, Q, 10, "l2")
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=FAST,
                                   quantization=quant("pq"))
        add_in_batches(col, X, 0, 3500)  # trained and checkpointed
        with vecdb.open(db_path, readonly=True) as ro:
            rcol = ro.get_collection("c")
            qs = _qstats(rcol)
            assert qs["trained"] and qs["trainings"] == 0 and qs["encoded_rows"] == 3500
            add_in_batches(col, X, 3500, 6000, 1250)
            assert rcol.count() == 6000
            for i in (10, 3499, 3500, 4999, 5999):
                assert rcol.query(X[i], k=5)[0].id == i
            results = rcol.query(Q, k=10, explain=True)
            assert results[0].explain["rescored"] > 0
            assert recall_at_k(result_ids(results), truth) >= 0.95
            assert_exact_distances(results, X, Q, "l2")
            qs = _qstats(rcol)
            assert qs["encoded_rows"] == 6000 and qs["trainings"] == 0
            with pytest.raises(vecdb.ReadOnlyError):
                rcol.optimize(force=True)


def test_readonly_handle_opened_before_training(db_path, graph_always):
    X, Q = clustered_vectors(5000, DIM, n_queries=30, seed=14)
    truth, _ = exact_topk(X, Q, 10, "l2")
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=FAST,
                                   quantization=quant("sq8"))
        add_in_batches(col, X, 0, 1000)
        with vecdb.open(db_path, readonly=True) as ro:
            rcol = ro.get_collection("c")
            assert not _qstats(rcol)["trained"]
            add_in_batches(col, X, 1000, 5000)  # the writer trains
            assert _qstats(col)["trained"]
            assert rcol.count() == 5000
            results = rcol.query(Q, k=10, explain=True)
            assert results[0].explain["rescored"] > 0
            assert _qstats(rcol)["trained"] and _qstats(rcol)["encoded_rows"] == 5000
            assert _qstats(rcol)["trainings"] == 0  # it loaded the writer's codes
            assert recall_at_k(result_ids(results), truth) >= 0.95
            assert_exact_distances(results, X, Q, "l2")


def test_queries_while_training_and_encoding_threads(db, graph_always):
    X, _ = clustered_vectors(8000, DIM, seed=17)
    col = db.create_collection("c", dim=DIM, metric="l2", index=FAST, quantization=quant("pq"))
    col.add(ids=list(range(2500)), vectors=X[:2500])

    def query(rng):
        i = int(rng.integers(0, 2500))
        res = col.query(X[i], k=5)
        assert res.ids.tolist()[0] == i and abs(res.distances[0]) < 1e-3, (i, res.ids.tolist())
        assert all(0 <= h.id < 8000 for h in res)
        assert list(res.distances) == sorted(res.distances)

    def insert():  # trains at 3,000 rows, then encodes on each add
        for s in range(2500, 8000, 500):
            col.add(ids=list(range(s, s + 500)), vectors=X[s:s + 500])

    during(insert, query)
    qs = _qstats(col)
    assert qs["trainings"] == 1 and qs["encoded_rows"] == 8000


@pytest.mark.parametrize("kind", ["sq8", "pq"])
def test_constant_dimensions_quantize_cleanly(db, graph_always, kind):
    """Dimensions that never vary (padding, a constant feature) give SQ8 a zero range and
    PQ sub-spaces of one point: no NaN, no lost rows."""
    X, Q = clustered_vectors(3000, DIM, n_queries=50, seed=18)
    X[:, :8] = 0.0
    X[:, 20] = 5.0
    Q[:, :8] = 0.0
    Q[:, 20] = 5.0
    q = vecdb.SQ8(train_size=1000) if kind == "sq8" else vecdb.PQ(m=8, train_size=1000)
    col = db.create_collection("c", dim=DIM, metric="l2", index=FAST, quantization=q)
    add_in_batches(col, X, 0, 3000)
    assert _qstats(col)["trained"] and np.isfinite(_qstats(col)["train_error"])
    truth, _ = exact_topk(X, Q, 10, "l2")
    results = col.query(Q, k=10)
    assert recall_at_k(result_ids(results), truth) >= 0.95
    assert_exact_distances(results, X, Q, "l2")


def test_codes_spanning_many_segments_persist_and_damage_is_found(db_path, graph_always,
                                                                  monkeypatch):
    """Code rows live in segments of CODE_ROWS rows, checkpointed one array per segment:
    shrink the segments so that a small collection spans several (one of them partial)."""
    monkeypatch.setattr(codes_module, "CODE_SHIFT", 9)
    monkeypatch.setattr(codes_module, "CODE_ROWS", 1 << 9)
    monkeypatch.setattr(codes_module, "CODE_MASK", (1 << 9) - 1)
    X, Q = clustered_vectors(2300, DIM, n_queries=30, seed=19)  # 4 whole segments + 252 rows
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=FAST,
                                   quantization=vecdb.SQ8(train_size=1000))
        add_in_batches(col, X, 0, 2300, 700)
        before = result_ids(col.query(Q, k=10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with vecdb.open(db_path) as db:
            col = db.get_collection("c")
            assert _qstats(col)["trainings"] == 0 and _qstats(col)["encoded_rows"] == 2300
            assert (result_ids(col.query(Q, k=10)) == before).all()
            col.add(ids=[2300], vectors=X[:1] + 0.5)  # the partial segment grows after a load
            assert col.query(X[0] + 0.5, k=1)[0].id == 2300
    path = _codes_files(db_path)[0]
    flip_bytes(path, 64 + 2 * (1 << 9) * DIM + 100)  # inside the array of a middle segment
    with pytest.warns(RuntimeWarning, match="codes checkpoint"):
        with vecdb.open(db_path) as db:
            col = db.get_collection("c")
            assert _qstats(col)["trainings"] == 1 and _qstats(col)["encoded_rows"] == 2301
            assert recall_at_k(result_ids(col.query(Q, k=10)), before) >= 0.95
