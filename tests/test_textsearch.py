"""Hybrid search, query(q, text=...) (vecdb/textsearch.py): the vector and keyword rankings
of the same filtered rows, fused; per-hit sides; explain; batches."""

import numpy as np
import pytest

import vecdb

WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta", "eta"]
N, DIM = 400, 8


@pytest.fixture
def col(db):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((N, DIM)).astype(np.float32)
    docs = [" ".join(rng.choice(WORDS, size=6)) for _ in range(N)]
    docs[123] += " ISIN US0378331005"  # the one document with this identifier
    c = db.create_collection("h", dim=DIM, metric="l2")
    c.add(ids=list(range(N)), vectors=X, documents=docs,
          metadatas=[{"even": i % 2 == 0} for i in range(N)])
    c.X, c.docs = X, docs
    return c


def test_exact_identifier_reaches_the_top_3_though_the_vector_points_elsewhere(col):
    q = col.X[7]  # row 7's own vector: far from row 123
    assert 123 not in col.query(q, k=10).ids.tolist()
    for fusion in (None, vecdb.RRF(k=60), vecdb.Weighted(alpha=0.5)):
        hits = col.query(q, text="US0378331005", k=10, fusion=fusion)
        assert 123 in hits.ids.tolist()[:3], (fusion, hits.ids.tolist())
        assert hits[0].id in (7, 123)


def test_sides_match_the_single_sided_rankings(col):
    q, text = col.X[11], "gamma theta"
    vec = col.query(q, k=50, include=()).ids.tolist()
    kw = col.query(text=text, k=50, include=())
    hits = col.query(q, text=text, k=10)
    assert len(hits) == 10
    for h in hits:
        assert h.sides and set(h.sides) <= {"vector", "text"}
        if "vector" in h.sides:
            assert vec[h.sides["vector"]["rank"] - 1] == h.id
            assert h.sides["vector"]["distance"] == pytest.approx(
                float(((col.X[h.id] - q) ** 2).sum()), rel=1e-4)
        if "text" in h.sides:
            assert kw.ids.tolist()[h.sides["text"]["rank"] - 1] == h.id
            assert h.sides["text"]["score"] == pytest.approx(
                kw.scores[h.sides["text"]["rank"] - 1], rel=1e-5)
        expect = sum(1 / (60 + s["rank"]) for s in h.sides.values())
        assert h.score == pytest.approx(expect) and h.distance == -h.score
    assert list(hits.scores) == sorted(hits.scores, reverse=True)


def test_weighted_extremes_reduce_to_one_side(col):
    q = col.X[5]
    vec = col.query(q, k=5, include=()).ids.tolist()
    assert col.query(q, text="alpha", k=5, fusion=vecdb.Weighted(alpha=1.0)).ids.tolist() \
        == vec
    kw = col.query(text="kappa kappa zeta", k=5, include=()).ids.tolist()
    assert col.query(q, text="kappa kappa zeta", k=5,
                     fusion=vecdb.Weighted(alpha=0.0)).ids.tolist() == kw


def test_filters_apply_to_both_sides_and_explain_shows_the_lists(col):
    res = col.query(col.X[2], text="US0378331005 omega", k=10, where={"even": True},
                    explain=True)
    assert all(h.id % 2 == 0 for h in res) and 123 not in res.ids.tolist()
    report = res.explain
    assert report["plan"] == "hybrid" and report["fusion"] == "RRF(k=60)"
    (lists,) = report["lists"]
    assert all(r % 2 == 0 for r in lists["vector"] + lists["text"])
    assert [f["row"] for f in lists["fused"]] == res.ids.tolist()  # ids are rows here
    assert report["vector"]["plan"] in ("exact", "hnsw")


def test_batches_and_bad_arguments(col):
    Q = col.X[[1, 2, 3]]
    one_text = col.query(Q, text="beta", k=4)
    assert len(one_text) == 3 and all(len(r) == 4 for r in one_text)
    per_query = col.query(Q, text=["beta", "gamma", "US0378331005"], k=4)
    assert 123 in per_query[2].ids.tolist()
    with pytest.raises(vecdb.InvalidArgumentError, match="text"):
        col.query(Q, text=["beta", "gamma"], k=4)
    with pytest.raises(vecdb.InvalidArgumentError, match="fusion"):
        col.query(Q[0], text="beta", fusion="rrf")
    assert len(col.query(Q[0], text="beta", k=5, where={"even": "never"})) == 0


def test_hybrid_needs_the_text_index(db):
    plain = db.create_collection("p", dim=2, text_index=False)
    plain.add(ids=[1], vectors=[[1, 0]], documents=["x"])
    with pytest.raises(vecdb.InvalidArgumentError, match="text_index=False"):
        plain.query([1, 0], text="x")
