"""HNSW through the collection API: recall, checkpoints, replay, corruption, deletes, threads."""

from __future__ import annotations

import os
import random
import time
import warnings

import numpy as np
import pytest

import vecdb
from conftest import Child, clustered_vectors, during, exact_topk, flip_bytes, recall_at_k
from vecdb.index import hnsw as hnsw_module
from vecdb.query import planner


@pytest.fixture
def graph_always(monkeypatch):
    """Makes every query with k < live rows use the graph, however small the collection."""
    monkeypatch.setattr(planner, "EXACT_SCAN_BELOW", 0)


def _ids(results):
    return [r.ids.tolist() for r in results]


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_recall_at_default_settings(db, metric):
    X, Q = clustered_vectors(20_000, 128, n_queries=200, seed=1)
    col = db.create_collection("c", dim=128, metric=metric)
    for s in range(0, len(X), 5000):
        col.add(ids=list(range(s, s + 5000)), vectors=X[s:s + 5000])
    truth, _ = exact_topk(X, Q, 10, metric)
    found = np.array(_ids(col.query(Q, k=10)))
    assert recall_at_k(found, truth) >= 0.95
    stats = col.stats()
    assert stats["index"]["type"] == "hnsw" and stats["index"]["nodes"] == 20_000
    assert stats["index"]["graph_bytes"] > 20_000 * 32 * 4


def test_ef_override_and_stats(db, graph_always):
    X, Q = clustered_vectors(3000, 32, n_queries=50, seed=2)
    col = db.create_collection("c", dim=32, metric="l2", index=vecdb.HNSW(m=8, ef_search=8))
    col.add(ids=list(range(3000)), vectors=X)
    truth, _ = exact_topk(X, Q, 10, "l2")
    low = recall_at_k(np.array(_ids(col.query(Q, k=10, ef=10))), truth)
    high = recall_at_k(np.array(_ids(col.query(Q, k=10, ef=400))), truth)
    assert high >= 0.99 and high >= low
    with pytest.raises(vecdb.InvalidArgumentError, match="ef"):
        col.query(Q[0], ef=0)
    assert col.index == vecdb.HNSW(m=8, ef_search=8)
    st = col.stats()
    assert (st["rows"], st["live"], st["tombstones"]) == (3000, 3000, 0)
    assert st["vector_bytes"] == 3000 * 32 * 4 and st["index"]["m"] == 8


def test_bad_hnsw_config():
    for kwargs, word in [({"m": 1}, "m"), ({"ef_construction": 0}, "ef_construction"),
                         ({"ef_search": "x"}, "ef_search")]:
        with pytest.raises(vecdb.InvalidArgumentError, match=f"HNSW.{word}"):
            vecdb.HNSW(**kwargs)


def test_reopen_gives_identical_results_without_rebuild(db_path, graph_always):
    X, Q = clustered_vectors(5000, 48, n_queries=30, seed=3)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=48, metric="cosine")
        col.add(ids=[f"r{i}" for i in range(5000)], vectors=X)
        before = _ids(col.query(Q, k=10))
    graph_file = next((db_path / "collections").glob("*/hnsw.graph"))
    assert graph_file.stat().st_size > 5000 * 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rebuild would warn
        with vecdb.open(db_path) as db:
            col = db.get_collection("c")
            assert col._rows.index.wait_verified(30)
            assert _ids(col.query(Q, k=10)) == before
            assert col.stats()["index"]["rebuilds"] == 0


def test_tail_is_replayed_on_open(db_path, graph_always, monkeypatch):
    X, Q = clustered_vectors(4000, 16, n_queries=20, seed=4)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=16, metric="l2")
        col.add(ids=list(range(3000)), vectors=X[:3000])
        col.flush()  # checkpoint covers 3000 rows
        monkeypatch.setattr(hnsw_module.HnswIndex, "checkpoint", lambda self: False)
        col.add(ids=list(range(3000, 4000)), vectors=X[3000:])
    monkeypatch.undo()
    monkeypatch.setattr(planner, "EXACT_SCAN_BELOW", 0)
    with vecdb.open(db_path) as db:
        col = db.get_collection("c")
        assert col.stats()["index"]["checkpoint_nodes"] == 3000
        assert col.stats()["index"]["nodes"] == 4000
        truth, _ = exact_topk(X, Q, 5, "l2")
        assert recall_at_k(np.array(_ids(col.query(Q, k=5))), truth) >= 0.95
        for i in (3000, 3500, 3999):
            assert col.query(X[i], k=1)[0].id == i


WRITER = """
import sys, numpy as np, vecdb
from vecdb.index import hnsw
hnsw.CHECKPOINT_MIN_TAIL = 500          # checkpoints happen while the child runs
hnsw.CHECKPOINT_TAIL_SHARE = 0.5
db = vecdb.open(sys.argv[1], durability="normal")
col = db.get_or_create_collection("c", dim=16, metric="l2")
b = col.count() // 100
print("ready", flush=True)
while True:
    ids = list(range(b * 100, b * 100 + 100))
    col.add(ids=ids, vectors=np.stack([np.random.default_rng(i).standard_normal(16) for i in ids]))
    print(b, flush=True)
    b += 1
"""


def test_sigkill_during_inserts_replays_tail(db_path, graph_always):
    acked = []
    for round_ in range(3):
        child = Child(WRITER, str(db_path))
        assert child.line() == "ready"
        time.sleep(random.uniform(0.4, 1.2))
        acked += [int(x) for x in child.kill()]
    assert acked, "the writer never acknowledged a batch"
    with vecdb.open(db_path) as db:
        col = db.get_collection("c")
        n = col.count()
        assert n % 100 == 0 and n >= 100 * (max(acked) + 1)
        for b in random.Random(0).sample(sorted(set(acked)), min(20, len(set(acked)))):
            i = b * 100 + 37
            v = np.random.default_rng(i).standard_normal(16)
            assert col.query(v, k=1)[0].id == i




@pytest.mark.parametrize("where", ["header", "body"])
def test_corrupt_checkpoint_is_detected_and_rebuilt(db_path, graph_always, where):
    X, Q = clustered_vectors(5000, 32, n_queries=50, seed=5)
    truth, _ = exact_topk(X, Q, 10, "l2")
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=32, metric="l2")
        col.add(ids=list(range(5000)), vectors=X)
        recall_before = recall_at_k(np.array(_ids(col.query(Q, k=10))), truth)
    graph_file = next((db_path / "collections").glob("*/hnsw.graph"))
    size = graph_file.stat().st_size
    flip_bytes(graph_file, 8 if where == "header" else size // 2)
    with vecdb.open(db_path) as db:
        with pytest.warns(RuntimeWarning, match="rebuilding"):
            col = db.get_collection("c")
            if where == "body":
                assert not col._rows.index.wait_verified(30)
                col.query(Q[0], k=10)
        assert col.stats()["index"]["rebuilds"] == 1
        recall_after = recall_at_k(np.array(_ids(col.query(Q, k=10))), truth)
        assert recall_after >= min(0.95, recall_before - 0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with vecdb.open(db_path) as db:  # the rebuilt checkpoint was written and is fine
            col = db.get_collection("c")
            assert col._rows.index.wait_verified(30)
            assert col.stats()["index"]["rebuilds"] == 0


def test_missing_checkpoint_is_rebuilt(db_path, graph_always):
    X, _ = clustered_vectors(3000, 16, seed=6)
    with vecdb.open(db_path) as db:
        db.create_collection("c", dim=16, metric="l2").add(ids=list(range(3000)), vectors=X)
    os.remove(next((db_path / "collections").glob("*/hnsw.graph")))
    with vecdb.open(db_path) as db:
        with pytest.warns(RuntimeWarning, match="missing"):
            col = db.get_collection("c")
        assert col.query(X[17], k=1)[0].id == 17


def test_deleted_and_upserted_never_returned(db, graph_always):
    X, Q = clustered_vectors(6000, 24, n_queries=40, seed=7)
    col = db.create_collection("c", dim=24, metric="l2")
    col.add(ids=list(range(6000)), vectors=X)
    deleted = list(range(0, 6000, 3))
    col.delete(deleted)
    moved = list(range(1, 6000, 30))
    far = X[moved] + 100.0
    col.upsert(ids=moved, vectors=far)
    alive = np.ones(6000, bool)
    alive[deleted] = False
    for res in col.query(np.vstack([Q, X[deleted[:20]]]), k=10):
        assert len(res) == 10
        assert not set(res.ids.tolist()) & set(deleted)
        for h in res:
            if h.id in moved:  # only if truly near the new vector
                assert h.distance > 1000
    assert col.query(far[3], k=1)[0].id == moved[3]


def test_min_k_live_guaranteed_when_most_rows_are_deleted(db_path, graph_always):
    X, Q = clustered_vectors(3000, 16, n_queries=10, seed=8)
    db = vecdb.open(db_path, auto_vacuum=None)  # keep the tombstones in the graph
    col = db.create_collection("c", dim=16, metric="l2", index=vecdb.HNSW(m=4, ef_search=10))
    col.add(ids=list(range(3000)), vectors=X)
    col.delete(list(range(0, 2975)))
    for res in col.query(Q, k=10):
        assert len(res) == 10 and min(res.ids) >= 2975
    db.close()


def test_vacuum_keeps_results_and_gives_space_back(db_path, graph_always):
    X, Q = clustered_vectors(6000, 32, n_queries=40, seed=9)
    with vecdb.open(db_path, auto_vacuum=None) as db:
        col = db.create_collection("c", dim=32, metric="cosine")
        col.add(ids=[f"x{i}" for i in range(6000)], vectors=X,
                metadatas=[{"i": i} for i in range(6000)])
        col.delete([f"x{i}" for i in range(0, 6000, 2)])
        col.upsert(ids=["x1"], vectors=X[1:2], metadatas=[{"i": "new"}])
        keep = np.arange(1, 6000, 2)
        truth, _ = exact_topk(X[keep], Q, 10, "cosine")
        want = [[f"x{keep[j]}" for j in row] for row in truth]
        before_files = sum(p.stat().st_size for p in (db_path / "collections").rglob("*.f32"))
        report = col.vacuum()
        assert report["removed"] == 3001 and report["rows_after"] == 3000
        after_files = sum(p.stat().st_size for p in (db_path / "collections").rglob("*.f32"))
        assert after_files < before_files * 0.75
        st = col.stats()
        assert (st["rows"], st["live"], st["tombstones"], st["generation"]) == (3000, 3000, 0, 1)
        got = _ids(col.query(Q, k=10))
        assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)]) >= 0.95
        assert col.get(ids=["x1"])[0].metadata == {"i": "new"}
        assert col.get(ids=["x2"]) == []
        col.add(ids=["fresh"], vectors=X[:1] * -1)
        assert col.query(-X[0], k=1)[0].id == "fresh"
    assert len(list((db_path / "collections").iterdir())) == 1  # old generation removed
    with vecdb.open(db_path, readonly=True) as db:
        col = db.get_collection("c")
        assert col.count() == 3001 and _ids(col.query(Q, k=10))[0] == got[0]
        np.testing.assert_allclose(col.get(ids=["x3"], include=["vector"])[0].vector,
                                   X[3] / np.linalg.norm(X[3]), rtol=1e-6)


def test_reader_follows_vacuum_in_same_process(db_path, graph_always):
    X, _ = clustered_vectors(2000, 8, seed=10)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        col.add(ids=list(range(2000)), vectors=X)
        with vecdb.open(db_path, readonly=True) as ro:
            rcol = ro.get_collection("c")
            assert rcol.query(X[5], k=1)[0].id == 5
            col.delete(list(range(1000)))
            col.vacuum()
            assert rcol.count() == 1000
            assert rcol.query(X[1500], k=1)[0].id == 1500
            assert rcol.get(ids=[1999], include=["vector"])[0].vector.tolist() == X[1999].tolist()


def test_queries_while_inserting_threads(db, graph_always):
    X, _ = clustered_vectors(8000, 16, seed=11)
    col = db.create_collection("c", dim=16, metric="l2")
    col.add(ids=list(range(2000)), vectors=X[:2000])

    def query(rng):
        i = int(rng.integers(0, 2000))
        res = col.query(X[i], k=5)
        assert res.ids.tolist()[0] == i, (i, res.ids.tolist())
        assert all(0 <= h.id < 8000 for h in res)
        assert list(res.distances) == sorted(res.distances)

    def insert():
        for s in range(2000, 8000, 500):
            col.add(ids=list(range(s, s + 500)), vectors=X[s:s + 500])

    during(insert, query)
    assert col.stats()["index"]["nodes"] == 8000

def test_auto_vacuum_runs_when_tombstones_pass_the_share(db_path):
    X, _ = clustered_vectors(3000, 8, seed=12)
    with vecdb.open(db_path, auto_vacuum=0.4) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        col.add(ids=list(range(3000)), vectors=X)
        col.delete(list(range(1000)))  # 33%: below the share
        assert col.stats()["generation"] == 0
        col.upsert(ids=list(range(1000, 1300)), vectors=X[1000:1300])  # 1300 of 3300: 39%
        assert col.stats()["generation"] == 0
        col.delete(list(range(1300, 1400)))  # 1400 of 3300: 42%
        st = col.stats()
        assert (st["generation"], st["rows"], st["tombstones"]) == (1, 1900, 0)
        assert col.query(X[2500], k=1)[0].id == 2500
    with vecdb.open(db_path, auto_vacuum=None) as db:
        col = db.get_collection("c")
        col.delete(list(range(1400, 3000)))
        assert col.stats()["generation"] == 1 and col.count() == 300
    with pytest.raises(vecdb.InvalidArgumentError, match="auto_vacuum"):
        vecdb.open(db_path, auto_vacuum=1.5)


def test_queries_and_gets_while_vacuuming(db_path, graph_always):
    X, _ = clustered_vectors(6000, 16, seed=13)
    db = vecdb.open(db_path, auto_vacuum=None)
    col = db.create_collection("c", dim=16, metric="l2")
    col.add(ids=list(range(6000)), vectors=X)
    deleted: set = set()

    def read(rng):
        i = int(rng.integers(3000, 6000))  # never deleted
        before = set(deleted)
        res = col.query(X[i], k=5)
        assert res.ids.tolist()[0] == i
        assert not set(res.ids.tolist()) & before
        np.testing.assert_array_equal(col.get(ids=[i], include=["vector"])[0].vector, X[i])

    def delete_and_vacuum():
        for start in range(0, 3000, 600):
            batch = list(range(start, start + 600))
            col.delete(batch)
            deleted.update(batch)
            col.vacuum()

    during(delete_and_vacuum, read)
    db.close()


def test_reader_starts_over_when_a_vacuum_removes_files_under_it(db_path, monkeypatch):
    from vecdb.storage import segments
    monkeypatch.setattr(segments, "MAX_SEGMENT_BYTES", 64 * 4 * 4)  # 64 rows of dim 4
    X, _ = clustered_vectors(100, 4, seed=14)
    with vecdb.open(db_path, auto_vacuum=None) as db:
        col = db.create_collection("c", dim=4, metric="l2")
        col.add(ids=list(range(50)), vectors=X[:50])
        with vecdb.open(db_path, readonly=True) as ro:
            rcol = ro.get_collection("c")
            assert rcol.count() == 50
            col.add(ids=list(range(50, 100)), vectors=X[50:])  # opens vectors.1.f32
            original = segments.SegmentStore._open_segment

            def vacuum_first(store, number, create):
                if not create and store is rcol._rows.store and number == 1:
                    monkeypatch.setattr(segments.SegmentStore, "_open_segment", original)
                    col.delete(list(range(10)))
                    col.vacuum()  # deletes the generation-0 folder the reader is about to read
                return original(store, number, create)

            monkeypatch.setattr(segments.SegmentStore, "_open_segment", vacuum_first)
            assert rcol.count() == 90
            assert rcol.stats()["generation"] == 1
            assert rcol.query(X[70], k=1)[0].id == 70
