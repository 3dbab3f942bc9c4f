"""Collection API: add/upsert/update/delete/get/count/query, include=, ids, persistence."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb

from conftest import exact_topk


def test_add_get_roundtrip_str_and_int_ids(db):
    col = db.create_collection("c", dim=3, metric="l2")
    col.add(ids=["a", 7, -3, "ü"], vectors=np.arange(12).reshape(4, 3),
            metadatas=[{"x": 1}, None, {"tags": ["p", "q"], "f": 0.5, "b": True, "n": None}, {}],
            documents=["doc a", None, "doc -3", ""])
    got = col.get(ids=[-3, "a", 7, "ü", "missing"], include=("metadata", "document", "vector"))
    assert [r.id for r in got] == [-3, "a", 7, "ü"]
    assert type(got[2].id) is int and type(got[1].id) is str
    assert got[0].metadata == {"tags": ["p", "q"], "f": 0.5, "b": True, "n": None}
    assert got[1].metadata == {"x": 1} and got[2].metadata == {}
    assert got[0].document == "doc -3" and got[2].document is None and got[3].document == ""
    np.testing.assert_array_equal(got[0].vector, [6, 7, 8])
    assert col.count() == len(col) == 4


def test_include_selects_fields(db):
    col = db.create_collection("c", dim=2, metric="l2")
    col.add(ids=["a"], vectors=[[1, 2]], metadatas=[{"k": 1}], documents=["d"])
    r = col.get(ids=["a"], include=["vector"])[0]
    assert r.metadata is None and r.document is None
    np.testing.assert_array_equal(r.vector, [1, 2])
    h = col.query([1, 2], k=1, include=("document",))[0]
    assert h.document == "d" and h.metadata is None and h.vector is None
    h = col.query([1, 2], k=1)[0]
    assert h.metadata == {"k": 1} and h.document == "d" and h.vector is None


def test_get_all_in_insertion_order_with_limit_offset(db):
    col = db.create_collection("c", dim=2, metric="l2")
    col.add(ids=[f"i{j}" for j in range(10)], vectors=np.zeros((10, 2)) + np.arange(10)[:, None])
    col.delete(["i3"])
    assert [r.id for r in col.get()] == [f"i{j}" for j in range(10) if j != 3]
    assert [r.id for r in col.get(limit=3, offset=2)] == ["i2", "i4", "i5"]
    assert col.get(limit=0) == []


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_query_equals_exact_search(db, metric):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 24)).astype(np.float32)
    Q = rng.normal(size=(7, 24)).astype(np.float32)
    col = db.create_collection("c", dim=24, metric=metric)
    col.add(ids=list(range(500)), vectors=X)
    want_rows, want_dist = exact_topk(X, Q, 10, metric)
    batch = col.query(Q, k=10)
    assert isinstance(batch, list) and len(batch) == 7
    for i, res in enumerate(batch):
        np.testing.assert_array_equal(res.ids, want_rows[i])
        np.testing.assert_allclose(res.distances, want_dist[i], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res.scores, -want_dist[i] + (1 if metric == "cosine" else 0),
                                   rtol=1e-4, atol=1e-4)
    single = col.query(Q[3], k=10)
    assert isinstance(single, vecdb.Results)
    np.testing.assert_array_equal(single.ids, want_rows[3])


def test_k_larger_than_count_and_empty_collection(db):
    col = db.create_collection("c", dim=2, metric="l2")
    assert len(col.query([0, 0], k=5)) == 0
    assert [len(r) for r in col.query(np.zeros((3, 2)), k=5)] == [0, 0, 0]
    col.add(ids=[1, 2], vectors=[[0, 0], [3, 4]])
    hits = col.query([0, 0], k=5)
    assert hits.ids.tolist() == [1, 2]
    assert hits.distances.tolist() == [0.0, 25.0] and hits.scores.tolist() == [0.0, -25.0]


def test_upsert_replaces_and_old_row_never_returned(db):
    col = db.create_collection("c", dim=2, metric="l2")
    col.add(ids=["a", "b"], vectors=[[0, 0], [10, 10]], metadatas=[{"v": 1}, {"v": 1}])
    col.upsert(ids=["a", "c"], vectors=[[10, 9], [5, 5]], metadatas=[{"v": 2}, None],
               documents=["new a", "c"])
    assert col.count() == 3
    hits = col.query([0, 0], k=3)
    assert hits.ids.tolist() == ["c", "a", "b"]
    assert hits[1].metadata == {"v": 2} and hits[1].document == "new a"
    np.testing.assert_array_equal(col.get(ids=["a"], include=["vector"])[0].vector, [10, 9])


def test_update_merges_metadata_and_keeps_vector_unless_given(db):
    col = db.create_collection("c", dim=2, metric="l2")
    col.add(ids=["a", "b"], vectors=[[0, 0], [1, 1]], metadatas=[{"x": 1, "y": 2}, {"x": 0}],
            documents=["da", "db"])
    col.update(ids=["a", "b"], metadatas=[{"y": 3, "z": "new"}, None], documents=[None, "db2"])
    a, b = col.get(ids=["a", "b"], include=["metadata", "document", "vector"])
    assert a.metadata == {"x": 1, "y": 3, "z": "new"} and a.document == "da"
    assert b.metadata == {"x": 0} and b.document == "db2"
    np.testing.assert_array_equal(a.vector, [0, 0])
    col.update(ids=["a"], vectors=[[5, 5]])
    assert col.count() == 2
    assert col.query([5, 5], k=1)[0].id == "a"
    assert col.get(ids=["a"])[0].metadata == {"x": 1, "y": 3, "z": "new"}


def test_delete(db):
    col = db.create_collection("c", dim=2, metric="l2")
    col.add(ids=[1, 2, 3], vectors=[[0, 0], [1, 1], [2, 2]])
    assert col.delete([2, 99]) == 1
    assert col.delete([2]) == 0 and col.delete([]) == 0
    assert col.count() == 2 and col.get(ids=[2]) == []
    assert col.query([1, 1], k=3).ids.tolist() == [1, 3]
    col.add(ids=[2], vectors=[[1, 1]])  # a deleted id can be added again
    assert col.query([1, 1], k=1)[0].id == 2


def test_persistence_across_reopen(db_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=8, metric="ip")
        col.add(ids=list(range(150)), vectors=X[:150], metadatas=[{"i": i} for i in range(150)])
        col.add(ids=[f"s{i}" for i in range(150, 300)], vectors=X[150:],
                documents=[f"d{i}" for i in range(150, 300)])
        col.delete([0, "s299"])
        col.upsert(ids=[1], vectors=X[2:3], metadatas=[{"i": "up"}])
        before = col.query(X[:5], k=7)
    with vecdb.open(db_path) as db:
        col = db.get_collection("c")
        assert col.count() == 298
        after = col.query(X[:5], k=7)
        assert [r.ids.tolist() for r in after] == [r.ids.tolist() for r in before]
        assert col.get(ids=[1])[0].metadata == {"i": "up"}
        assert col.get(ids=["s150"])[0].document == "d150"
        assert col.get(ids=[0, "s299"]) == []
        np.testing.assert_array_equal(col.get(ids=[5], include=["vector"])[0].vector, X[5])


def test_cosine_stores_unit_vectors_and_scores_are_similarities(db):
    col = db.create_collection("c", dim=2, metric="cosine")
    col.add(ids=["x", "y"], vectors=[[3, 0], [0, 2]])
    hits = col.query([1, 1], k=2)
    np.testing.assert_allclose(hits.scores, [np.sqrt(0.5)] * 2, rtol=1e-6)
    np.testing.assert_allclose(hits.distances, [1 - np.sqrt(0.5)] * 2, rtol=1e-6)
    np.testing.assert_allclose(col.get(ids=["x"], include=["vector"])[0].vector, [1, 0])


def test_cosine_rows_read_back_and_added_again_keep_every_bit(db):
    """Normalizing is idempotent: stored unit rows re-added elsewhere are stored unchanged
    (what makes export -> import exact under cosine)."""
    X = np.random.default_rng(3).standard_normal((2000, 64)).astype(np.float32) * 7
    a = db.create_collection("a", dim=64, metric="cosine")
    a.add(ids=list(range(2000)), vectors=X)
    stored = np.stack([r.vector for r in a.get(include=["vector"])])
    assert not np.array_equal(stored, X)  # they were normalized ...
    b = db.create_collection("b", dim=64, metric="cosine")
    b.add(ids=list(range(2000)), vectors=stored)
    again = np.stack([r.vector for r in b.get(include=["vector"])])
    assert again.tobytes() == stored.tobytes()  # ... once


def test_large_payload_is_compressed_and_roundtrips(db):
    col = db.create_collection("c", dim=2, metric="l2")
    doc = "lorem ipsum " * 2000
    col.add(ids=["big"], vectors=[[0, 1]], documents=[doc], metadatas=[{"t": "x" * 5000}])
    r = col.get(ids=["big"])[0]
    assert r.document == doc and r.metadata["t"] == "x" * 5000


def test_many_rows_across_segments(db_path, monkeypatch):
    from vecdb.storage import segments
    monkeypatch.setattr(segments, "MAX_SEGMENT_BYTES", 64 * 4 * 4)  # 64 rows of dim 4
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 4)).astype(np.float32)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=4, metric="l2")
        for s in range(0, 1000, 170):
            col.add(ids=list(range(s, min(s + 170, 1000))), vectors=X[s:s + 170])
        col.delete(list(range(0, 1000, 3)))
        mask = np.ones(1000, bool)
        mask[::3] = False
        want, _ = exact_topk(X, X[:20], 5, "l2", mask=mask)
        got = col.query(X[:20], k=5)
        assert [r.ids.tolist() for r in got] == want.tolist()
    assert len(list((db_path / "collections").glob("*/vectors.*.f32"))) == 16
    with vecdb.open(db_path, readonly=True) as db:
        got = db.get_collection("c").query(X[:20], k=5)
        assert [r.ids.tolist() for r in got] == want.tolist()


def test_results_print_html_and_pandas(db):
    col = db.create_collection("c", dim=2, metric="l2")
    col.add(ids=["a", "b"], vectors=[[0, 0], [1, 0]], metadatas=[{"year": 2024}, {}],
            documents=["<b>bold</b>", "plain"])
    hits = col.query([0, 0], k=2)
    text = repr(hits)
    assert "2 hits" in text and "year" in text and "plain" in text
    html = hits._repr_html_()
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<table" in html
    assert hits[:1].ids.tolist() == ["a"]
    pd = pytest.importorskip("pandas", reason="to_pandas needs the optional pandas package")
    df = hits.to_pandas()
    assert isinstance(df, pd.DataFrame) and df["id"].tolist() == ["a", "b"]
    assert repr(col).startswith("Collection(name='c', dim=2, metric='l2', count=2, index=HNSW(")


def test_ids_only_queries_read_the_id_column(db):
    col = db.create_collection("c", dim=2, metric="l2")
    col.add(ids=[-2**63, 2**63 - 1, 0, 7], vectors=[[0, 0], [1, 0], [2, 0], [3, 0]])
    assert col.query([0, 0], k=4, include=()).ids.tolist() == [-2**63, 2**63 - 1, 0, 7]
    batch = col.query([[0, 0], [3, 0]], k=2, include=())
    assert [r.ids.tolist() for r in batch] == [[-2**63, 2**63 - 1], [7, 0]]
    assert batch[1].distances.tolist() == [0.0, 1.0]
    col.add(ids=["s"], vectors=[[0.5, 0]])  # a str id: read from the record instead
    res = col.query([0, 0], k=3, include=())
    assert res.ids.tolist() == [-2**63, "s", 2**63 - 1] and res[1].metadata is None
    col.upsert(ids=[7], vectors=[[-1, 0]])
    assert col.query([-1, 0], k=1, include=())[0].id == 7
