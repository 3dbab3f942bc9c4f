"""vecdb.integrations.langchain.VecDBVectorStore: LangChain's published standard suite
(langchain-tests' VectorStoreIntegrationTests, sync and async) on two configurations, then our
own checks of what the suite does not cover: exact distances and relevance scores per metric,
filters, MMR against LangChain's reference implementation, the async path, retrievers,
lifecycle, failed writes, and the example script."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import numpy as np
import pytest

pytest.importorskip("langchain_core", reason="the langchain extra is not installed")
pytest.importorskip("langchain_tests", reason="langchain-tests (test extra) is not installed")

from conftest import VECDB_ROOT
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.vectorstores.utils import maximal_marginal_relevance
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

import vecdb
from vecdb.integrations.langchain import VecDBVectorStore

# The standard suite's async tests are plain `async def` methods: pytest-asyncio runs them
# when marked (the project runs it in strict mode). A class mark also reaches the suite's sync
# tests, for which pytest-asyncio warns that the mark is useless: that one warning is muted.
STANDARD_MARKS = (
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore:The test <Function .*> is marked with "
                               "'@pytest.mark.asyncio' but it is not an async function"),
)


def _standard(cls):
    for mark in STANDARD_MARKS:
        cls = mark(cls)
    return cls


@_standard
class TestStandardPath(VectorStoreIntegrationTests):
    """The suite on the default configuration: path=, cosine, HNSW."""

    @pytest.fixture()
    def vectorstore(self, tmp_path):
        store = VecDBVectorStore(self.get_embeddings(), path=tmp_path / "lc.vdb")
        try:
            yield store
        finally:
            store.close()


@_standard
class TestStandardDatabaseL2(VectorStoreIntegrationTests):
    """The suite on an open Database given as database=, l2 metric, exact (Flat) index."""

    @pytest.fixture()
    def vectorstore(self, db):
        store = VecDBVectorStore(self.get_embeddings(), database=db, metric="l2",
                                 index=vecdb.Flat(), collection_name="standard")
        try:
            yield store
        finally:
            store.close()
            assert not db.closed  # the store leaves a database it did not open


# -- helpers -----------------------------------------------------------------------------------


class TableEmbeddings(Embeddings):
    """Each text's vector is looked up in a table (exact numbers for exact checks); counts
    the sync and async calls."""

    def __init__(self, table):
        self.table = {t: [float(x) for x in v] for t, v in table.items()}
        self.calls = {"sync": 0, "async": 0}

    def embed_documents(self, texts):
        self.calls["sync"] += 1
        return [self.table[t] for t in texts]

    def embed_query(self, text):
        self.calls["sync"] += 1
        return self.table[text]

    async def aembed_documents(self, texts):
        self.calls["async"] += 1
        return [self.table[t] for t in texts]

    async def aembed_query(self, text):
        self.calls["async"] += 1
        return self.table[text]


class AsyncOnlyEmbeddings(TableEmbeddings):
    """Fails on every sync call: proves the async methods await the async embedding."""

    def embed_documents(self, texts):
        raise AssertionError("sync embed_documents called from an async method")

    def embed_query(self, text):
        raise AssertionError("sync embed_query called from an async method")


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


RNG = np.random.default_rng(7)
TEXTS = [f"text {i}" for i in range(40)]
VECTORS = RNG.standard_normal((40, 8))
TABLE = dict(zip(TEXTS, VECTORS))
TABLE["query"] = RNG.standard_normal(8)
METAS = [{"i": i, "parity": ["even", "odd"][i % 2], "tags": [f"t{i % 3}"], "half": i < 20}
         for i in range(40)]


def _store(tmp_path, metric="cosine", table=TABLE, **kwargs):
    return VecDBVectorStore(TableEmbeddings(table), path=tmp_path / f"{metric}.vdb",
                            metric=metric, **kwargs)


def _filled(tmp_path, metric="cosine", **kwargs):
    store = _store(tmp_path, metric, **kwargs)
    store.add_texts(TEXTS, METAS, ids=[str(i) for i in range(40)])
    return store


def _reference_distances(metric, query, vectors):
    q, X = np.asarray(query, dtype=np.float64), np.asarray(vectors, dtype=np.float64)
    if metric == "cosine":
        return 1.0 - (X @ q) / (np.linalg.norm(X, axis=1) * np.linalg.norm(q))
    if metric == "l2":
        return ((X - q) ** 2).sum(axis=1)
    return -(X @ q)


# -- construction and lifecycle ----------------------------------------------------------------


def test_construction_errors_name_the_argument(tmp_path, db):
    emb = DeterministicFakeEmbedding(size=4)
    cases = [
        ({}, "path/database"),
        ({"path": tmp_path / "a", "database": db}, "path/database"),
        ({"database": str(tmp_path)}, "database:"),
        ({"path": tmp_path / "b", "metric": "dot"}, "metric"),
        ({"path": tmp_path / "c", "dim": 0}, "dim"),
        ({"path": tmp_path / "d", "collection_name": ""}, "collection_name:"),
    ]
    for kwargs, named in cases:
        with pytest.raises(vecdb.InvalidArgumentError, match=named):
            VecDBVectorStore(emb, **kwargs)
    with pytest.raises(vecdb.InvalidArgumentError, match="embedding:"):
        VecDBVectorStore(lambda t: [1.0], path=tmp_path / "e")
    # nothing was opened or created by a refused construction (the database= one aside)
    assert not any((tmp_path / name).exists() for name in "abcde")


def test_existing_collection_with_other_metric_or_dim_is_refused_and_unlocked(tmp_path):
    path = tmp_path / "x.vdb"
    with vecdb.open(path) as db:
        db.create_collection("langchain", dim=4, metric="ip")
    emb = DeterministicFakeEmbedding(size=4)
    for kwargs, named in (({"metric": "l2"}, "metric"), ({"dim": 5}, "dim")):
        with pytest.raises(vecdb.InvalidArgumentError, match=named):
            VecDBVectorStore(emb, path=path, **kwargs)
    with VecDBVectorStore(emb, path=path) as store:  # the lock was released each time
        assert store.metric == "ip" and store.collection.dim == 4


def test_collection_created_by_first_write_with_embedding_dim(tmp_path):
    with VecDBVectorStore(DeterministicFakeEmbedding(size=5), path=tmp_path / "l.vdb",
                          collection_name="notes") as store:
        assert store.database.list_collections() == [] and store.collection is None
        assert store.similarity_search("x") == [] and store.get_by_ids(["x"]) == []
        assert store.max_marginal_relevance_search("x") == []
        assert store.delete(["x"]) is True and store.delete() is True
        assert store.database.list_collections() == []
        store.add_texts(["a"])
        col = store.collection
        assert (col.name, col.dim, col.metric) == ("notes", 5, "cosine")
    with VecDBVectorStore(DeterministicFakeEmbedding(size=5), path=tmp_path / "m.vdb",
                          dim=5, metric="l2") as store:  # dim= creates it at once
        assert (store.collection.dim, store.collection.metric) == (5, "l2")


def test_close_owned_database_and_context_manager(tmp_path):
    path = tmp_path / "own.vdb"
    with VecDBVectorStore(DeterministicFakeEmbedding(size=4), path=path) as store:
        store.add_texts(["kept"], ids=["k"])
    assert store.database.closed
    with pytest.raises(vecdb.DatabaseClosedError):
        store.similarity_search("kept")
    with pytest.raises(vecdb.DatabaseClosedError):
        store.add_texts(["more"])
    store.close()  # idempotent
    with vecdb.open(path, timeout=0) as db:  # lock released; the data is on disk
        assert [r.document for r in db.get_collection("langchain").get(ids=["k"])] == ["kept"]


def test_given_database_stays_open_and_shares_data(db):
    emb = DeterministicFakeEmbedding(size=4)
    store = VecDBVectorStore(emb, database=db, collection_name="shared")
    store.add_texts(["one", "two"], [{"n": 1}, {"n": 2}], ids=["1", "2"])
    store.close()
    assert not db.closed
    with pytest.raises(vecdb.DatabaseClosedError):
        store.get_by_ids(["1"])
    col = db.get_collection("shared")
    assert {r.id: r.metadata for r in col.get()} == {"1": {"n": 1}, "2": {"n": 2}}
    # items written by plain vecdb (int ids, no document) read back as Documents
    col.add(ids=[3], vectors=[emb.embed_query("three")], metadatas=[{"n": 3}])
    again = VecDBVectorStore(emb, database=db, collection_name="shared")
    assert again.similarity_search("three", k=1) == [
        Document(id="3", page_content="", metadata={"n": 3})]


# -- writes ------------------------------------------------------------------------------------


def test_ids_generated_given_and_from_documents(tmp_path):
    store = _store(tmp_path)
    made = store.add_texts(TEXTS[:2])
    assert all(uuid.UUID(i).version == 4 for i in made) and made[0] != made[1]
    docs = [Document(page_content=TEXTS[2], id="doc-2"), Document(page_content=TEXTS[3]),
            Document(page_content=TEXTS[4], id="doc-4")]
    ids = store.add_documents(docs)
    assert ids[0] == "doc-2" and ids[2] == "doc-4" and uuid.UUID(ids[1])
    assert docs[1].id is None  # the caller's documents are not changed
    assert store.add_documents(docs[:1], ids=["override"]) == ["override"]  # ids= wins
    got = {d.id: d.page_content for d in store.get_by_ids(["override", "doc-2", "nope"])}
    assert got == {"override": TEXTS[2], "doc-2": TEXTS[2]}
    assert len(store.collection) == 6
    store.close()


def test_metadata_round_trip_and_replacement(tmp_path):
    store = _store(tmp_path)
    meta = {"s": "é ✓", "i": -(2**63), "f": 2.5, "b": True, "none": None,
            "list": [1, "x", False, None, 0.5], "empty": []}
    store.add_texts([TEXTS[0], TEXTS[1]], [meta, {}], ids=["a", "b"])
    assert store.get_by_ids(["b", "a"]) == [Document(id="b", page_content=TEXTS[1], metadata={}),
                                            Document(id="a", page_content=TEXTS[0],
                                                     metadata=meta)]
    store.add_texts([TEXTS[2]], [{"only": 1}], ids=["a"])  # upsert replaces, no merge
    assert store.get_by_ids(["a"]) == [Document(id="a", page_content=TEXTS[2],
                                                metadata={"only": 1})]
    assert store.get_by_ids(["a", "a"]) == store.get_by_ids(["a"])
    store.close()


def test_empty_page_content_round_trips(tmp_path):
    with _store(tmp_path, table={"": [1.0, 2.0], "q": [1.0, 2.0]}) as store:
        store.add_texts([""], [{"k": 1}], ids=["e"])
        assert store.similarity_search("q", k=1) == [
            Document(id="e", page_content="", metadata={"k": 1})]


@pytest.mark.parametrize("bad, error, named", [
    ({"metadatas": [{"nested": {"a": 1}}, {}]}, vecdb.InvalidMetadataError,
     r"metadatas\[0\]\['nested'\]"),
    ({"metadatas": [{"when": object()}, {}]}, vecdb.InvalidMetadataError, "metadatas"),
    ({"metadatas": [{}]}, vecdb.InvalidArgumentError, "metadatas"),
    ({"ids": ["x"]}, vecdb.InvalidArgumentError, "ids: got 1 ids for 2"),
    ({"ids": ["x", 7]}, vecdb.InvalidIdError, r"ids\[1\]"),
    ({"ids": ["x", "x"]}, vecdb.DuplicateIdError, r"ids\[1\]"),
    ({"batch_size": 0}, vecdb.InvalidArgumentError, "batch_size"),
    ({"upsert": True}, vecdb.InvalidArgumentError, "unknown keyword"),
])
def test_failed_add_writes_nothing_and_embeds_nothing(tmp_path, bad, error, named):
    store = _store(tmp_path)
    kwargs = {"metadatas": [{}, {}], **bad}
    with pytest.raises(error, match=named):
        store.add_texts(TEXTS[:2], **kwargs)
    assert store.embeddings.calls["sync"] == 0  # refused before any embedding call
    assert store.database.list_collections() == []  # not even the collection was created
    store.add_texts(TEXTS[:1], ids=["x"])
    with pytest.raises(error, match=named):
        store.add_texts(TEXTS[:2], **kwargs)
    assert [d.id for d in store.similarity_search(TEXTS[0], k=5)] == ["x"]
    store.close()


def test_bad_embeddings_are_refused(tmp_path):
    zero = {"z": [0.0, 0.0], "ok": [1.0, 0.0], "ragged": [1.0]}
    with _store(tmp_path, table=zero) as store:
        with pytest.raises(vecdb.InvalidVectorError, match="embedding"):
            store.add_texts(["ok", "z"])  # zero vector under cosine, before creation
        assert store.collection is None
        with pytest.raises(vecdb.InvalidArgumentError, match="embedding"):
            store.add_texts(["ok", "ragged"])
        store.add_texts(["ok"])
        with pytest.raises(vecdb.DimensionMismatchError):
            store.add_texts(["ragged"])
        assert len(store.collection) == 1


def test_batch_size_splits_embedding_calls_but_not_the_write(tmp_path):
    with _store(tmp_path) as store:
        store.add_texts(TEXTS[:10], batch_size=3)
        assert store.embeddings.calls["sync"] == 4 and len(store.collection) == 10


# -- search ------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_scores_are_exact_distances_and_relevance_is_cosine(tmp_path, metric):
    store = _filled(tmp_path, metric)
    hits = store.similarity_search_with_score("query", k=40)
    want = _reference_distances(metric, TABLE["query"], VECTORS)
    order = np.argsort(want, kind="stable")
    assert [d.id for d, _ in hits] == [str(i) for i in order]
    np.testing.assert_allclose([s for _, s in hits], want[order], rtol=1e-5, atol=1e-5)
    # relevance with unit vectors: the cosine similarity under every metric, within [0, 1]
    unit_table = {t: _unit(v) for t, v in TABLE.items()}
    unit = _store(tmp_path / "unit", metric, table=unit_table)
    unit.add_texts(TEXTS, ids=[str(i) for i in range(40)])
    rel = unit.similarity_search_with_relevance_scores("query", k=40)
    cos = {str(i): float(_unit(VECTORS[i]) @ _unit(TABLE["query"])) for i in range(40)}
    for doc, score in rel:
        assert score == pytest.approx(min(1.0, max(0.0, cos[doc.id])), abs=1e-5)
    kept = unit.similarity_search_with_relevance_scores("query", k=40, score_threshold=0.3)
    assert {d.id for d, _ in kept} == {i for i, c in cos.items() if c >= 0.3}
    store.close()
    unit.close()


def test_filters_map_onto_the_where_language(tmp_path):
    store = _filled(tmp_path)
    cases = [
        ({"parity": "odd"}, lambda m: m["parity"] == "odd"),
        ({"i": {"$gte": 10, "$lt": 15}}, lambda m: 10 <= m["i"] < 15),
        ({"$or": [{"i": 3}, {"tags": {"$contains": "t2"}}]},
         lambda m: m["i"] == 3 or m["tags"] == ["t2"]),
        ({"$not": {"half": True}}, lambda m: not m["half"]),
        ({"i": {"$in": [1, 2, 39]}, "parity": {"$ne": "odd"}}, lambda m: m["i"] == 2),
    ]
    for where, keep in cases:
        want = {str(m["i"]) for m in METAS if keep(m)}
        got = store.similarity_search("query", k=40, filter=where)
        assert {d.id for d in got} == want, where
        assert all(keep(d.metadata) for d in got)
    got = store.similarity_search("query", k=40, where_document={"$contains": "text 3"},
                                  filter={"i": {"$lt": 35}})
    assert {d.id for d in got} == {"3", "30", "31", "32", "33", "34"}
    assert store.similarity_search("query", k=3, ef=100)  # vecdb knobs pass through
    with pytest.raises(vecdb.FilterError, match="filter: expected a dict"):
        store.similarity_search("query", filter=lambda d: True)
    with pytest.raises(vecdb.FilterError, match=r"\$regex"):
        store.similarity_search("query", filter={"i": {"$regex": "x"}})
    with pytest.raises(vecdb.InvalidArgumentError, match="fetch_k"):
        store.similarity_search("query", fetch_k=10)
    with pytest.raises(vecdb.InvalidArgumentError, match="k:"):
        store.similarity_search("query", k=0)
    store.close()


def test_search_by_vector_matches_search_by_text(tmp_path):
    store = _filled(tmp_path, "l2")
    q = TABLE["query"].tolist()
    assert store.similarity_search_by_vector(q, k=7, filter={"parity": "even"}) == \
        store.similarity_search("query", k=7, filter={"parity": "even"})
    assert [d for d, _ in store.similarity_search_with_score_by_vector(q, k=3)] == \
        store.similarity_search("query", k=3)
    store.close()


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("lambda_mult", [0.0, 0.25, 0.5, 0.9])
def test_mmr_matches_langchain_reference(tmp_path, metric, lambda_mult):
    store = _filled(tmp_path, metric)
    got = store.max_marginal_relevance_search("query", k=6, fetch_k=25,
                                              lambda_mult=lambda_mult)
    # the reference: LangChain's own MMR over the same 25 nearest candidates
    nearest = store.similarity_search("query", k=25)
    cand = [TABLE[d.page_content] for d in nearest]
    picks = maximal_marginal_relevance(np.asarray(TABLE["query"]), cand, lambda_mult, 6)
    assert [d.id for d in got] == [nearest[i].id for i in picks]
    store.close()


def test_mmr_diversifies_filters_and_validates(tmp_path):
    table = {"q": [1.0, 0.0, 0.0], "a": [1.0, 0.05, 0.0], "a2": [1.0, 0.06, 0.0],
             "a3": [1.0, 0.04, 0.01], "b": [0.7, 0.0, 0.7]}
    with _store(tmp_path, table=table) as store:
        store.add_texts(["a", "a2", "a3", "b"], [{"g": 1}, {"g": 1}, {"g": 2}, {"g": 1}],
                        ids=["a", "a2", "a3", "b"])
        plain = [d.id for d in store.similarity_search("q", k=2)]
        assert plain[1] != "b"
        assert [d.id for d in store.max_marginal_relevance_search(
            "q", k=2, fetch_k=4, lambda_mult=1.0)] == plain
        assert [d.id for d in store.max_marginal_relevance_search(
            "q", k=2, fetch_k=4, lambda_mult=0.3)] == [plain[0], "b"]
        assert "a3" not in [d.id for d in store.max_marginal_relevance_search(
            "q", k=4, fetch_k=4, filter={"g": 1})]
        assert len(store.max_marginal_relevance_search("q", k=3, fetch_k=1)) == 3
        for bad, named in (({"lambda_mult": 1.5}, "lambda_mult"),
                           ({"lambda_mult": "0.5"}, "lambda_mult"),
                           ({"fetch_k": 0}, "fetch_k"), ({"k": -1}, "k:")):
            with pytest.raises(vecdb.InvalidArgumentError, match=named):
                store.max_marginal_relevance_search("q", **bad)


# -- delete ------------------------------------------------------------------------------------


def test_delete_by_ids_filter_and_all(tmp_path):
    store = _filled(tmp_path)
    assert store.delete(["0", "1", "missing"]) is True
    assert store.get_by_ids(["0", "1", "2"]) == store.get_by_ids(["2"])
    store.delete(filter={"parity": "odd"})
    assert all(d.metadata["parity"] == "even" for d in store.similarity_search("query", k=40))
    store.delete(["2", "4"], filter={"i": 4})  # ids and filter: the ids that match
    assert [d.id for d in store.get_by_ids(["2", "4"])] == ["2"]
    store.delete(where_document={"$contains": "text 1"})
    assert not [d for d in store.similarity_search("query", k=40)
                if d.page_content.startswith("text 1")]
    with pytest.raises(vecdb.InvalidArgumentError, match="ids: expected a list"):
        store.delete("2")
    with pytest.raises(vecdb.InvalidArgumentError, match="unknown keyword"):
        store.delete(["2"], cascade=True)
    assert store.get_by_ids(["2"])  # refused calls deleted nothing
    store.delete()  # LangChain: no ids, no filter -> everything
    assert store.similarity_search("query", k=5) == [] and len(store.collection) == 0
    store.add_texts(TEXTS[:1])
    store.delete_collection()
    assert store.database.list_collections() == [] and store.similarity_search("query") == []
    store.add_texts(TEXTS[:2])
    assert len(store.collection) == 2
    store.close()


# -- async, retrievers, from_texts -------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_methods_await_the_async_embedding(tmp_path):
    emb = AsyncOnlyEmbeddings(TABLE)
    store = VecDBVectorStore(emb, path=tmp_path / "a.vdb")
    ids = await store.aadd_texts(TEXTS[:20], METAS[:20], ids=[str(i) for i in range(20)])
    assert ids == [str(i) for i in range(20)]
    await store.aadd_documents([Document(page_content=TEXTS[20], metadata={"i": 20}, id="20")])
    hits = await store.asimilarity_search_with_score("query", k=21)
    want = _reference_distances("cosine", TABLE["query"], VECTORS[:21])
    np.testing.assert_allclose(sorted(s for _, s in hits), np.sort(want), atol=1e-5)
    docs = await store.asimilarity_search("query", k=3, filter={"parity": "odd"})
    assert len(docs) == 3 and all(d.metadata["parity"] == "odd" for d in docs)
    mmr = await store.amax_marginal_relevance_search("query", k=4, fetch_k=10)
    assert len({d.id for d in mmr}) == 4
    rel = await store.asimilarity_search_with_relevance_scores("query", k=5)
    assert all(0.0 <= s <= 1.0 for _, s in rel)
    await store.adelete(["0", "1"])
    assert [d.id for d in await store.aget_by_ids(["0", "1", "2"])] == ["2"]
    got = await store.as_retriever(search_kwargs={"k": 2}).ainvoke("query")
    assert len(got) == 2
    assert emb.calls["async"] >= 6
    store.close()


@pytest.mark.asyncio
async def test_afrom_texts(tmp_path):
    store = await VecDBVectorStore.afrom_texts(TEXTS[:3], TableEmbeddings(TABLE),
                                               ids=["a", "b", "c"], path=tmp_path / "f.vdb")
    assert [d.id for d in await store.aget_by_ids(["c", "a"])] == ["c", "a"]
    store.close()


def test_retrievers(tmp_path):
    store = _filled(tmp_path)
    sim = store.as_retriever(search_kwargs={"k": 3, "filter": {"parity": "even"}})
    docs = sim.invoke("query")
    assert docs == store.similarity_search("query", k=3, filter={"parity": "even"})
    mmr = store.as_retriever(search_type="mmr",
                             search_kwargs={"k": 3, "fetch_k": 10, "lambda_mult": 0.2})
    assert mmr.invoke("query") == store.max_marginal_relevance_search(
        "query", k=3, fetch_k=10, lambda_mult=0.2)
    thr = store.as_retriever(search_type="similarity_score_threshold",
                             search_kwargs={"score_threshold": 0.2, "k": 40})
    kept = thr.invoke("query")
    rel = {d.id: s for d, s in store.similarity_search_with_relevance_scores(
        "query", k=40)}
    assert {d.id for d in kept} == {i for i, s in rel.items() if s >= 0.2}
    assert "VecDBVectorStore" in sim.tags
    store.close()


def test_from_texts_and_from_documents(tmp_path, db):
    emb = TableEmbeddings(TABLE)
    store = VecDBVectorStore.from_texts(TEXTS[:3], emb, METAS[:3], ids=["0", "1", "2"],
                                        path=tmp_path / "t.vdb", metric="l2", batch_size=2)
    assert store.metric == "l2" and [d.metadata["i"] for d in store.get_by_ids(["2"])] == [2]
    store.close()
    docs = [Document(page_content=TEXTS[5], metadata={"x": 1}, id="five")]
    other = VecDBVectorStore.from_documents(docs, emb, database=db, collection_name="d")
    assert other.get_by_ids(["five"]) == docs
    with pytest.raises(vecdb.InvalidArgumentError, match="path/database"):
        VecDBVectorStore.from_texts(TEXTS[:1], emb)
    path = tmp_path / "failed.vdb"
    with pytest.raises(vecdb.InvalidMetadataError):
        VecDBVectorStore.from_texts(TEXTS[:1], emb, [{"bad": {"x": 1}}], path=path)
    with vecdb.open(path, timeout=0) as again:  # the failed store let go of the database
        assert again.list_collections() == []


def test_persistence_across_stores(tmp_path):
    path = tmp_path / "p.vdb"
    emb = TableEmbeddings(TABLE)
    with VecDBVectorStore(emb, path=path, collection_name="kb") as store:
        store.add_texts(TEXTS[:5], METAS[:5], ids=list("abcde"))
    with VecDBVectorStore(emb, path=path, collection_name="kb") as store:
        assert [d.id for d in store.get_by_ids(list("edcba"))] == list("edcba")
        assert store.similarity_search(TEXTS[3], k=1)[0].metadata == METAS[3]


# -- packaging and the example -----------------------------------------------------------------


def _run(code, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (VECDB_ROOT, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, *(("-c", code) if code else ()), *args],
                          check=False, capture_output=True, text=True, env=env, timeout=120)


def test_framework_is_optional():
    out = _run("import sys, vecdb, vecdb.integrations\n"
               "assert 'langchain_core' not in sys.modules\n"
               "sys.modules['langchain_core'] = None\n"
               "try:\n"
               "    import vecdb.integrations.langchain\n"
               "except ImportError as e:\n"
               "    print(e)\n")
    assert out.returncode == 0, out.stderr
    assert "pip install 'vecdb[langchain]'" in out.stdout


def test_example_script_runs(tmp_path):
    script = os.path.join(VECDB_ROOT, "examples", "langchain_example.py")
    out = _run(None, script, str(tmp_path / "example.vdb"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "added 8 documents"
    start = lines.index("filtered search: 'flooding rivers' where year >= 2021") + 1
    filtered = lines[start:start + 3]
    assert "river-2023" in filtered[0] and not any("2019" in line for line in filtered)
    distances = [float(line.split()[0]) for line in filtered]
    assert distances == sorted(distances)
    picks = {line.split(":")[0]: line.split(": ")[1].split(", ") for line in lines
             if line.startswith(("similarity:", "mmr:", "retriever:"))}
    assert all(p.startswith("river-") for p in picks["similarity"])
    assert picks["mmr"][0] == picks["similarity"][0]
    assert sum(p.startswith("river-") for p in picks["mmr"]) == 1  # MMR diversifies
    assert sorted(picks["retriever"]) == ["bread-2022", "bread-2024"]
    assert (tmp_path / "example.vdb").is_dir()
