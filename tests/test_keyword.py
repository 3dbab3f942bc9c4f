"""Keyword search, query(text=...) (vecdb/query/keyword.py): BM25 over the documents'
postings, at the collection level, with filters, deletes, batches and readers."""

import math

import numpy as np
import pytest

import vecdb
from vecdb.query.tokenize import term_counts

DOCS = {
    "aapl": "Apple Inc. (AAPL) ISIN US0378331005 reports record quarter",
    "pie": "apple pie with cinnamon and apple slices",
    "gpt": "release notes for gpt-4o and gpt-4 turbo, v2.1.0",
    "err": "ImportError: cannot import name foo_bar from module baz",
    "market": "the market closed higher as apple and microsoft rallied",
    "empty": "",
    "none": None,
}


def _col(db, **kw):
    col = db.create_collection("c", dim=4, metric="l2", **kw)
    ids = list(DOCS)
    rng = np.random.default_rng(0)
    col.add(ids=ids, vectors=rng.random((len(ids), 4)), documents=[DOCS[i] for i in ids],
            metadatas=[{"n": i} for i in range(len(ids))])
    return col


def _bm25_reference(docs, text, k1=1.2, b=0.75):
    counts = {i: term_counts(d) for i, d in docs.items() if d}
    counts = {i: c for i, c in counts.items() if c}
    n = len(counts)
    avg = sum(sum(c.values()) for c in counts.values()) / n
    out = {}
    for i, c in counts.items():
        dl = sum(c.values())
        s = 0.0
        for term, qtf in term_counts(text).items():
            tf = c.get(term, 0)
            if tf:
                df = sum(term in other for other in counts.values())
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                s += qtf * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avg))
        if s:
            out[i] = s
    return sorted(out.items(), key=lambda kv: -kv[1])


@pytest.mark.parametrize("text", ["apple", "US0378331005", "gpt-4o", "foo_bar error",
                                  "apple market microsoft", "nothing matches zzz"])
def test_scores_and_order_equal_the_reference(db, text):
    col = _col(db)
    hits = col.query(text=text, k=10)
    ref = _bm25_reference(DOCS, text)
    assert [h.id for h in hits] == [i for i, _ in ref]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in ref], rtol=1e-9)
    assert all(h.distance == -h.score for h in hits)
    assert all(h.document == DOCS[h.id] for h in hits)


def test_rare_identifiers_rank_first(db):
    col = _col(db)
    assert col.query(text="US0378331005", k=3)[0].id == "aapl"
    assert col.query(text="what changed in gpt-4o?", k=3)[0].id == "gpt"
    assert col.query(text="v2.1.0", k=3)[0].id == "gpt"
    assert col.query(text="AAPL", k=1)[0].id == "aapl"


def test_filters_deletes_updates_and_batches(db):
    col = _col(db)
    assert [h.id for h in col.query(text="apple", k=10, where={"n": {"$gte": 1}})] == \
        [i for i, _ in _bm25_reference(DOCS, "apple") if i != "aapl"]
    assert col.query(text="apple", k=10, where_document={"$contains": "pie"}).ids.tolist() \
        == ["pie"]
    col.delete(ids=["pie"])
    assert "pie" not in col.query(text="apple cinnamon", k=10).ids.tolist()
    col.update(ids=["market"], documents=["cinnamon rolls"])
    assert col.query(text="cinnamon", k=10).ids.tolist() == ["market"]
    col.upsert(ids=["err"], vectors=[[0, 0, 0, 0]], documents=["no error here at all"])
    assert col.query(text="foo_bar", k=10).ids.tolist() == []
    batch = col.query(text=["cinnamon", "US0378331005", "zzz"], k=2, include=())
    assert [r.ids.tolist() for r in batch] == [["market"], ["aapl"], []]


def test_explain_and_bad_arguments(db):
    col = _col(db)
    report = col.query(text="apple pie", k=3, explain=True).explain
    assert report["plan"] == "keyword" and report["terms"] == [["apple", "pie"]]
    assert report["hits"] == [3]
    with pytest.raises(vecdb.InvalidArgumentError, match="query"):
        col.query(k=3)
    with pytest.raises(vecdb.InvalidArgumentError, match="fusion"):
        col.query(text="apple", fusion=vecdb.RRF())  # nothing to fuse
    with pytest.raises(vecdb.InvalidArgumentError, match=r"text\[1\]"):
        col.query(text=["apple", 3])
    other = db.create_collection("plain", dim=4, text_index=False)
    other.add(ids=[1], vectors=[[1, 0, 0, 0]], documents=["apple"])
    with pytest.raises(vecdb.InvalidArgumentError, match="text_index=False"):
        other.query(text="apple")


def test_reader_sees_new_documents(db_path):
    with vecdb.open(db_path) as db:
        col = _col(db)
        with vecdb.open(db_path, readonly=True) as ro:
            rcol = ro.get_collection("c")
            assert rcol.query(text="kiwi", k=3).ids.tolist() == []
            col.add(ids=["kiwi"], vectors=[[1, 1, 1, 1]], documents=["kiwi smoothie"])
            assert rcol.query(text="kiwi", k=3).ids.tolist() == ["kiwi"]
    with vecdb.open(db_path) as db:
        col = db.get_collection("c")
        col.vacuum()
        assert col.query(text="kiwi smoothie", k=1)[0].id == "kiwi"


def test_bm25_parameters_and_stopwords_are_the_collections(db):
    col = _col(db, text_index=vecdb.BM25(k1=2.0, b=0.3))
    assert col.text_index == vecdb.BM25(k1=2.0, b=0.3)
    hits = col.query(text="apple market", k=10)
    ref = _bm25_reference(DOCS, "apple market", k1=2.0, b=0.3)
    assert [h.id for h in hits] == [i for i, _ in ref]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in ref], rtol=1e-9)

    sw = db.create_collection("sw", dim=4, text_index=vecdb.BM25(stopwords="english"))
    sw.add(ids=[1, 2], vectors=[[1, 0, 0, 0], [0, 1, 0, 0]],
           documents=["the cat and the hat", "a dog"])
    assert sw.query(text="the", k=5).ids.tolist() == []  # stop words are not indexed
    assert sw.query(text="the cat", k=5).ids.tolist() == [1]
    report = sw.query(text="the cat", k=5, explain=True).explain
    assert report["terms"] == [["cat"]]
    with pytest.raises(vecdb.InvalidArgumentError, match="BM25.b"):
        vecdb.BM25(b=2.0)
    with pytest.raises(vecdb.InvalidArgumentError, match="BM25.stopwords"):
        vecdb.BM25(stopwords="klingon")
    with pytest.raises(vecdb.InvalidArgumentError, match="text_index"):
        db.create_collection("bad", dim=4, text_index="yes")


def test_text_index_config_survives_reopen(db_path):
    with vecdb.open(db_path) as db:
        db.create_collection("a", dim=2, text_index=vecdb.BM25(k1=0.9, stopwords="english"))
        db.create_collection("b", dim=2, text_index=False)
        db.create_collection("c", dim=2)
    with vecdb.open(db_path, readonly=True) as db:
        assert db.get_collection("a").text_index == vecdb.BM25(k1=0.9, stopwords="english")
        assert db.get_collection("b").text_index is None
        assert db.get_collection("c").text_index == vecdb.BM25()
