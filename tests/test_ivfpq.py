"""The IVF-PQ index (vecdb.IVFPQ) through the collection API: exact scans until trained,
recall and exact (rescored) distances after, nprobe against an exhaustive ADC reference,
filters, deletes, vacuum, checkpoints (ivfpq.vdbq) and their damage, optimize() and drift,
stats.

Small indexes (nlist=32, m=8, train_size=2,000 on dim 32) train in well under a second.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import vecdb
from conftest import (add_in_batches, assert_exact_distances, clustered_vectors,
                      clustered_vectors_with_labels, during, exact_distances, exact_topk,
                      flip_bytes, recall_at_k, result_ids)
from vecdb.query import planner

DIM = 32
IVF = vecdb.IVFPQ(nlist=32, m=8, nprobe=8, train_size=2000)


@pytest.fixture
def no_small_scan(monkeypatch):
    """The planner would scan any collection below 4,096 eligible rows exactly; with this the
    index's own state (trained or not) decides."""
    monkeypatch.setattr(planner, "EXACT_SCAN_BELOW", 0)




def _istats(col) -> dict:
    return col.stats()["index"]




def _ivf_files(db_path):
    return sorted((db_path / "collections").glob("*/ivfpq.vdbq"))




@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exact_until_trained_then_ivfpq(db, no_small_scan, metric):
    X, Q = clustered_vectors(8000, DIM, n_queries=100, seed=21)
    col = db.create_collection("c", dim=DIM, metric=metric, index=IVF)
    assert col.index == IVF and col.quantization is None
    add_in_batches(col, X, 0, 1500)
    st = col.stats()
    assert st["index"]["type"] == "ivfpq" and st["index"]["trained"] is False
    assert st["code_bytes_per_vector"] == 4 * DIM and st["graph_bytes_per_vector"] == 0
    truth, _ = exact_topk(X[:1500], Q, 10, metric)
    results = col.query(Q, k=10, explain=True)
    assert results[0].explain["plan"] == "exact"
    assert col.explain(Q[0], k=10)["plan"] == "exact"
    assert recall_at_k(result_ids(results), truth) == 1.0

    add_in_batches(col, X, 1500, 8000, 3250)  # the first of these batches reaches train_size
    st = col.stats()
    assert st["index"]["trained"] is True and st["index"]["trainings"] == 1
    assert st["index"]["trained_rows"] == 4750 and st["index"]["covered_rows"] == 8000
    # m code bytes and, under l2 and cosine (searched with L2 codes), a 4-byte norm term
    assert st["code_bytes_per_vector"] == IVF.m + 4 and st["graph_bytes_per_vector"] == 0
    report = col.explain(Q[0], k=10)
    assert report["plan"] == "ivfpq" and report["nprobe"] == IVF.nprobe
    assert report["rescored"] > 0

    truth, _ = exact_topk(X, Q, 10, metric)
    results = col.query(Q, k=10, nprobe=16, explain=True)
    assert results[0].explain["plan"] == "ivfpq" and results[0].explain["nprobe"] == 16
    assert all(len(r) == 10 for r in results)
    assert recall_at_k(result_ids(results), truth) >= 0.95
    assert_exact_distances(results, X, Q, metric)  # rescored: no ADC distance leaks out
    for i in (0, 1499, 1500, 7999):  # rows from before and after training
        assert col.query(X[i], k=3)[0].id == i


def test_full_probe_matches_exhaustive_adc_with_rescoring(db, no_small_scan):
    """nprobe = nlist scans every code: the result is then the exact rescoring of the
    k * rescore best rows by ADC distance, which numpy recomputes from the decoded codes
    (an ADC distance is the distance to centroid + decoded residual)."""
    X, Q = clustered_vectors(6000, DIM, n_queries=100, seed=22)
    config = vecdb.IVFPQ(nlist=32, m=4, nprobe=1, rescore=2, train_size=2000)  # coarse codes
    col = db.create_collection("c", dim=DIM, metric="l2", index=config)
    add_in_batches(col, X, 0, 6000, 3000)
    k, n_cand = 10, 10 * config.rescore
    lists = col._rows.index._lists
    recon = np.full_like(X, np.nan)
    for li in range(lists.nlist):
        size = int(lists.sizes[li])
        rows = np.asarray(lists.rows[li][:size], dtype=np.int64)
        codes = np.ascontiguousarray(lists.codes[li][:size])
        recon[rows] = lists.centroids[li] + lists.quantizer.decode(codes)
    assert not np.isnan(recon).any(), "a row is in no list"
    adc = exact_distances(recon, Q, "l2")
    true = exact_distances(X, Q, "l2")
    reference = []
    for i in range(len(Q)):
        cand = np.argsort(adc[i], kind="stable")[:n_cand]
        reference.append(cand[np.argsort(true[i, cand], kind="stable")[:k]])
    truth, _ = exact_topk(X, Q, k, "l2")
    ref_recall = recall_at_k(np.array(reference), truth)
    full = recall_at_k(result_ids(col.query(Q, k=k, nprobe=config.nlist)), truth)
    one = recall_at_k(result_ids(col.query(Q, k=k, nprobe=1)), truth)
    assert abs(full - ref_recall) <= 0.02, (full, ref_recall)
    assert full >= one - 0.01, (full, one)
    # per query, the full probe finds what the reference finds (ADC ties aside)
    found = result_ids(col.query(Q, k=k, nprobe=config.nlist))
    same = np.mean([len(set(f) & set(r)) / k for f, r in zip(found.tolist(), reference)])
    assert same >= 0.97, same


def test_knobs(db, no_small_scan):
    X, Q = clustered_vectors(4000, DIM, n_queries=20, seed=24)
    col = db.create_collection("c", dim=DIM, metric="l2", index=IVF)
    add_in_batches(col, X, 0, 4000)
    truth, _ = exact_topk(X, Q, 10, "l2")
    assert recall_at_k(result_ids(col.query(Q, k=10, nprobe=1000, rescore=30)), truth) >= 0.99
    for bad in (0, -2, 1.5, "x"):
        with pytest.raises(vecdb.InvalidArgumentError, match="nprobe"):
            col.query(Q[0], k=10, nprobe=bad)
        with pytest.raises(vecdb.InvalidArgumentError, match="rescore"):
            col.query(Q[0], k=10, rescore=bad)


def test_filters_return_only_matches(db, no_small_scan):
    n = 8000
    X, Q, labels = clustered_vectors_with_labels(n, DIM, n_queries=60, seed=23)
    metas = [{"c": i % 10, "g": int(labels[i]) % 5, "rare": i % 200 == 3, "i": i}
             for i in range(n)]
    col = db.create_collection("c", dim=DIM, metric="l2", index=IVF)
    add_in_batches(col, X, 0, n, 4000, metadatas=metas)
    assert _istats(col)["trained"]
    ids = np.arange(n)
    g = labels % 5
    cases = [({"c": {"$lt": 8}}, ids % 10 < 8, 0.95),
             ({"c": {"$lt": 5}}, ids % 10 < 5, 0.95),
             ({"c": 3}, ids % 10 == 3, 0.9),
             ({"g": 0}, g == 0, None),          # whole clusters: often far from the query
             ({"rare": True}, ids % 200 == 3, 0.9),   # 40 rows
             ({"i": {"$lt": 6}}, ids < 6, 1.0)]       # fewer than k
    for where, mask, floor in cases:
        truth, _ = exact_topk(X, Q, 10, "l2", mask=mask)
        results = col.query(Q, k=10, where=where, nprobe=16)
        want = min(10, int(mask.sum()))
        for r in results:
            assert len(r) == want, where
            assert mask[np.asarray(r.ids, dtype=np.int64)].all(), where
        if floor is not None:
            found = np.array([r.ids.tolist() for r in results])
            assert recall_at_k(found, truth[:, :want]) >= floor, where
        assert_exact_distances(results, X, Q, "l2")
    report = col.query(Q[:4], k=10, where={"c": {"$lt": 8}}, explain=True)[0].explain
    assert report["plan"] == "ivfpq"


def test_deletes_upserts_and_vacuum(db_path, no_small_scan):
    n = 6000
    X, Q = clustered_vectors(n, DIM, n_queries=50, seed=25)
    with vecdb.open(db_path, auto_vacuum=None) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=IVF)
        add_in_batches(col, X, 0, n, 3000)
        deleted = list(range(0, n, 3))
        col.delete(deleted)
        moved = list(range(1, n, 50))
        far = X[moved] + 100.0
        col.upsert(ids=moved, vectors=far)
        alive = np.ones(n, bool)
        alive[deleted] = False
        alive[moved] = True  # upsert brings back the moved ids that were deleted
        deleted = sorted(set(deleted) - set(moved))
        Xnow = X.copy()
        Xnow[moved] = far
        results = col.query(np.vstack([Q, X[deleted[:20]], X[moved[:10]]]), k=10, nprobe=16)
        for r in results:
            assert len(r) == 10 and not set(r.ids.tolist()) & set(deleted)
        for r in results[len(Q) + 20:]:  # the old vectors of moved ids are gone
            for h in r:
                if h.id in moved:
                    assert h.distance > 1000
        truth, _ = exact_topk(Xnow, Q, 10, "l2", mask=alive)
        assert recall_at_k(result_ids(results[:len(Q)]), truth) >= 0.95
        assert col.query(far[3], k=1)[0].id == moved[3]

        trained = col.stats()["index"]
        col.vacuum()
        st = col.stats()
        live = int(alive.sum())
        assert (st["generation"], st["rows"], st["live"]) == (1, live, live)
        assert st["index"]["trained"] and st["index"]["covered_rows"] == live
        # the new generation keeps the centroids and codebooks: no training
        assert st["index"]["trainings"] == 0
        assert st["index"]["train_error"] == trained["train_error"]
        assert st["code_bytes_per_vector"] == IVF.m + 4  # + the norm term
        files = _ivf_files(db_path)
        assert len(files) == 1 and files[0].parent.name.endswith(".v1")
        results = col.query(Q, k=10, nprobe=16, explain=True)
        assert results[0].explain["plan"] == "ivfpq"
        assert recall_at_k(result_ids(results), truth) >= 0.95
        assert_exact_distances(results, Xnow, Q, "l2")


def test_reopen_without_retraining(db_path, no_small_scan):
    X, Q = clustered_vectors(6000, DIM, n_queries=40, seed=26)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="cosine", index=IVF)
        add_in_batches(col, X, 0, 3000)       # trained and checkpointed here
        add_in_batches(col, X, 3000, 5000)    # added to the lists; checkpointed at close
        before = col.query(Q, k=10)
        assert _istats(col)["trainings"] == 1
    assert len(_ivf_files(db_path)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a retraining would warn
        with vecdb.open(db_path) as db:
            col = db.get_collection("c")
            st = _istats(col)
            assert st["trained"] and st["trainings"] == 0
            assert st["covered_rows"] == 5000 and st["trained_rows"] == 3000
            after = col.query(Q, k=10)
            assert [r.ids.tolist() for r in after] == [r.ids.tolist() for r in before]
            for a, b in zip(after, before):
                np.testing.assert_allclose(a.distances, b.distances, rtol=1e-6, atol=1e-7)
            add_in_batches(col, X, 5000, 6000)
            assert _istats(col)["covered_rows"] == 6000 and _istats(col)["trainings"] == 0
            assert col.query(X[5500], k=3)[0].id == 5500
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with vecdb.open(db_path, readonly=True) as db:
            col = db.get_collection("c")
            st = _istats(col)
            assert st["trainings"] == 0 and st["covered_rows"] == 6000
            assert col.query(X[5999], k=3)[0].id == 5999


@pytest.mark.parametrize("where", ["header", "body"])
def test_damaged_checkpoint_warns_and_retrains(db_path, no_small_scan, where):
    X, Q = clustered_vectors(5000, DIM, n_queries=50, seed=27)
    truth, _ = exact_topk(X, Q, 10, "l2")
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=IVF)
        add_in_batches(col, X, 0, 5000)
    (ivf_file,) = _ivf_files(db_path)
    flip_bytes(ivf_file, 8 if where == "header" else ivf_file.stat().st_size // 2)
    db = vecdb.open(db_path)
    try:
        with pytest.warns(RuntimeWarning, match="IVF-PQ"):
            col = db.get_collection("c")
            col.query(Q[0], k=10)
        st = _istats(col)
        assert st["trained"] and st["trainings"] == 1 and st["covered_rows"] == 5000
        results = col.query(Q, k=10, nprobe=16, explain=True)
        assert results[0].explain["plan"] == "ivfpq"
        assert recall_at_k(result_ids(results), truth) >= 0.95
        assert_exact_distances(results, X, Q, "l2")
    finally:
        db.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with vecdb.open(db_path) as db:
            assert _istats(db.get_collection("c"))["trainings"] == 0


def test_optimize_trains_and_retrains_on_drift(db, no_small_scan):
    X, Q = clustered_vectors(7000, DIM, n_queries=50, seed=28)
    X[5000:] += 10.0  # the last 2,000 rows come from a shifted distribution
    Qs = Q + 10.0
    col = db.create_collection("c", dim=DIM, metric="l2",
                               index=vecdb.IVFPQ(nlist=16, m=8, nprobe=8, train_size=50_000))
    add_in_batches(col, X, 0, 100)
    assert col.optimize()["trained"] is False  # below the 256 rows PQ needs
    assert not _istats(col)["trained"]
    add_in_batches(col, X, 100, 3000)
    assert col.explain(Q[0], k=10)["plan"] == "exact"
    report = col.optimize()
    assert report["trained"] is True and report["rows"] == 3000, report
    st = _istats(col)
    assert st["trained"] and st["trainings"] == 1 and st["covered_rows"] == 3000
    assert col.explain(Q[0], k=10)["plan"] == "ivfpq"
    add_in_batches(col, X, 3000, 5000)  # same distribution: no drift
    assert col.optimize()["trained"] is False
    assert _istats(col)["trainings"] == 1 and _istats(col)["covered_rows"] == 5000
    add_in_batches(col, X, 5000, 7000)  # shifted by +10 in every dimension: drift
    report = col.optimize()
    assert report["trained"] is True and report["rows"] == 7000, report
    st = _istats(col)
    assert st["trainings"] == 2 and st["trained_rows"] == 7000 and st["covered_rows"] == 7000
    assert col.optimize()["trained"] is False
    queries = np.vstack([Q, Qs])
    truth, _ = exact_topk(X, queries, 10, "l2")
    results = col.query(queries, k=10)
    assert recall_at_k(result_ids(results), truth) >= 0.95
    assert_exact_distances(results, X, queries, "l2")


def test_queries_while_training_and_adding_threads(db, no_small_scan):
    X, _ = clustered_vectors(8000, DIM, seed=29)
    col = db.create_collection("c", dim=DIM, metric="l2", index=IVF)
    col.add(ids=list(range(1500)), vectors=X[:1500])

    def query(rng):
        i = int(rng.integers(0, 1500))
        res = col.query(X[i], k=5, nprobe=16)
        assert res.ids.tolist()[0] == i and abs(res.distances[0]) < 1e-3, (i, res.ids.tolist())
        assert len(res) == 5 and all(0 <= h.id < 8000 for h in res)
        assert list(res.distances) == sorted(res.distances)

    def insert():  # trains at 2,000 rows, then adds to the lists
        for s in range(1500, 8000, 500):
            col.add(ids=list(range(s, s + 500)), vectors=X[s:s + 500])

    during(insert, query)
    st = _istats(col)
    assert st["trainings"] == 1 and st["covered_rows"] == 8000


def test_default_train_size_is_39_rows_per_list(db, no_small_scan):
    X, Q = clustered_vectors(400, DIM, n_queries=5, seed=30)
    col = db.create_collection("c", dim=DIM, metric="l2", index=vecdb.IVFPQ(nlist=8, m=8))
    assert _istats(col)["rows_to_train"] == 312  # max(39 * 8, 256)
    col.add(ids=list(range(311)), vectors=X[:311])
    assert not _istats(col)["trained"]
    col.add(ids=[311], vectors=X[311:312])
    st = _istats(col)
    assert st["trained"] and st["trained_rows"] == 312
    assert col.query(X[5], k=3)[0].id == 5


def test_more_lists_than_rows(db, no_small_scan):
    """optimize() below nlist rows: as many lists as sample rows, and still exact answers."""
    X, Q = clustered_vectors(400, DIM, n_queries=20, seed=31)
    col = db.create_collection("c", dim=DIM, metric="l2", index=vecdb.IVFPQ(nlist=512, m=8))
    col.add(ids=list(range(400)), vectors=X)
    report = col.optimize()
    assert report["trained"] is True
    st = _istats(col)
    assert st["trained"] and 1 <= st["lists"] <= 400 and st["covered_rows"] == 400
    truth, _ = exact_topk(X, Q, 10, "l2")
    results = col.query(Q, k=10, nprobe=512, explain=True)
    assert results[0].explain["plan"] == "ivfpq"
    assert recall_at_k(result_ids(results), truth) >= 0.95
    assert_exact_distances(results, X, Q, "l2")


def test_default_nprobe_is_an_eighth_of_the_lists(db, no_small_scan):
    assert vecdb.IVFPQ(nlist=1024).probes(1024) == 128
    assert vecdb.IVFPQ(nlist=64).probes(64) == 16  # at least 16 ...
    assert vecdb.IVFPQ(nlist=8).probes(8) == 8     # ... but never more than the lists
    assert vecdb.IVFPQ(nlist=1024, nprobe=5).probes(1024) == 5
    X, Q = clustered_vectors(6000, DIM, n_queries=5, seed=23)
    col = db.create_collection("c", dim=DIM, metric="l2",
                               index=vecdb.IVFPQ(nlist=200, m=8, train_size=2000))
    add_in_batches(col, X, 0, 6000, 3000)
    assert col.stats()["index"]["lists"] == 200
    assert col.explain(Q[0], k=10)["nprobe"] == 25
    assert col.explain(Q[0], k=10, where=None)["plan"] == "ivfpq"


def test_readonly_handle_opened_before_training_loads_the_writers_lists(db_path,
                                                                         no_small_scan):
    X, Q = clustered_vectors(6000, DIM, n_queries=30, seed=24)
    truth, _ = exact_topk(X, Q, 10, "l2")
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2", index=IVF)
        add_in_batches(col, X, 0, 1000)
        with vecdb.open(db_path, readonly=True) as ro:
            rcol = ro.get_collection("c")
            assert rcol.explain(Q[0], k=10)["plan"] == "exact"
            add_in_batches(col, X, 1000, 6000, 2500)  # the writer trains and checkpoints
            assert col.stats()["index"]["trained"]
            results = rcol.query(Q, k=10, nprobe=16, explain=True)
            assert results[0].explain["plan"] == "ivfpq"
            st = rcol.stats()["index"]
            assert st["trained"] and st["trainings"] == 0  # loaded, not trained again
            assert st["covered_rows"] == 6000
            assert recall_at_k(result_ids(results), truth) >= 0.95
            assert_exact_distances(results, X, Q, "l2")
