"""vecdb.integrations.llama_index.VecDBVectorStore under LlamaIndex: a VectorStoreIndex end to
end (retriever, query engine, from_documents, delete_ref_doc, reopen), MetadataFilters against
a direct computation, the store's own methods, query modes, and bad input.

Offline by construction: the embedding is examples/local_embedding.py (hashed features, numpy
only), there is no LLM (MockLLM, response_mode="no_text"), nodes are pre-built or split by a
SentenceSplitter given a whitespace tokenizer and a regex sentence splitter (so neither
tiktoken nor NLTK data is needed), LlamaIndex's global tokenizer is set to str.split, and
every test runs with socket connections refused.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("llama_index.core", reason="llama-index-core (the llama-index extra) is "
                    "not installed")

from conftest import VECDB_ROOT
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.llms.mock import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import (
    MetadataMode,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn

import vecdb
from vecdb.errors import FilterError, InvalidArgumentError
from vecdb.integrations.llama_index import VecDBVectorStore

EXAMPLES = os.path.join(VECDB_ROOT, "examples")
sys.path.insert(0, EXAMPLES)
from llama_index_example import HashEmbedding  # the example's adapter: tested as users run it
from local_embedding import embed

DIM = 256  # HashEmbedding's dimension
CORPUS = [  # (text, metadata); "reviewer" is sparse: a value, None, "" or missing
    ("Rivers flood the valley every spring after the snow melts.",
     {"topic": "nature", "year": 2019, "rating": 4.5, "tags": ["water", "weather"],
      "reviewer": "ann"}),
    ("Photosynthesis lets plants turn sunlight into sugar.",
     {"topic": "biology", "year": 2021, "rating": 3.0, "tags": ["plants", "energy"],
      "reviewer": None}),
    ("The tax rules for small businesses changed in 2024.",
     {"topic": "finance", "year": 2024, "rating": 2.5, "tags": ["tax", "law"],
      "reviewer": ""}),
    ("Volcanoes erupt when magma pushes through the crust.",
     {"topic": "geology", "year": 2018, "rating": 5.0, "tags": ["earth", "fire"]}),
    ("Neural networks learn their weights by gradient descent.",
     {"topic": "computing", "year": 2023, "rating": 4.0, "tags": ["ml", "math"],
      "reviewer": "bob"}),
    ("Sourdough bread rises thanks to wild yeast.",
     {"topic": "cooking", "year": 2020, "rating": 3.5, "tags": ["food", "yeast"]}),
    ("Glaciers carve deep valleys over thousands of years.",
     {"topic": "geology", "year": 2022, "rating": 4.0, "tags": ["ice", "earth"],
      "reviewer": "ann"}),
    ("Interest rates shape the mortgage payments of home buyers.",
     {"topic": "finance", "year": 2023, "rating": 3.0, "tags": ["money", "law"]}),
    ("Honeybees pollinate flowers and make honey.",
     {"topic": "biology", "year": 2019, "rating": 4.5, "tags": ["insects", "food"],
      "reviewer": "cy"}),
    ("Compilers translate source code into machine instructions.",
     {"topic": "computing", "year": 2021, "rating": 2.0, "tags": ["code"]}),
]
QUERIES = [("how do compilers translate source code", "n9"),
           ("bees making honey from flowers", "n8"),
           ("magma and volcanoes erupting", "n3"),
           ("mortgage interest rates", "n7")]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network: socket connections raise. LlamaIndex's tokenizer is local (str.split), so
    get_tokenizer() (which VectorStoreIndex reaches through its default node parser) never
    loads a tiktoken encoding, which would be downloaded when not cached: loading one fails."""
    import llama_index.core
    import tiktoken

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access or tokenizer download attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(tiktoken, "get_encoding", refuse)
    monkeypatch.setattr(tiktoken, "encoding_for_model", refuse)
    monkeypatch.setattr(llama_index.core, "global_tokenizer", str.split)


def corpus_nodes() -> list[TextNode]:
    """The corpus as TextNodes n0..n9 of documents d0..d4 (two each), metadata not embedded."""
    return [TextNode(id_=f"n{i}", text=text, metadata=dict(meta),
                     excluded_embed_metadata_keys=list(meta),
                     relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"d{i // 2}")})
            for i, (text, meta) in enumerate(CORPUS)]


def build_index(store) -> VectorStoreIndex:
    return VectorStoreIndex(corpus_nodes(), embed_model=HashEmbedding(),
                            storage_context=StorageContext.from_defaults(vector_store=store))


def direct_scores(query: str) -> dict:
    """Cosine similarity of query to each corpus node, computed here with numpy."""
    X = embed([n.get_content(metadata_mode=MetadataMode.EMBED) for n in corpus_nodes()], DIM)
    s = X.astype(np.float64) @ embed([query], DIM)[0].astype(np.float64)
    return {f"n{i}": float(v) for i, v in enumerate(s)}


def check_ranking(hits, query: str, allowed) -> None:
    """hits are exactly the allowed nodes' top len(hits), best first, with the directly
    computed similarities (ties may come in any order)."""
    want = direct_scores(query)
    got = [h.node.node_id for h in hits]
    assert set(got) <= set(allowed) and len(got) == min(len(hits), len(allowed))
    np.testing.assert_allclose([h.score for h in hits], [want[i] for i in got], atol=1e-5)
    ranked = sorted((want[i] for i in allowed), reverse=True)[: len(got)]
    np.testing.assert_allclose([h.score for h in hits], ranked, atol=1e-5)


@pytest.fixture
def store(db_path):
    s = VecDBVectorStore(path=db_path)
    yield s
    s.close()


# -- end to end ------------------------------------------------------------------------------


def test_retriever_returns_the_expected_node_first(store):
    index = build_index(store)
    retriever = index.as_retriever(similarity_top_k=3)
    for query, expected in QUERIES:
        hits = retriever.retrieve(query)
        assert hits[0].node.node_id == expected
        assert hits[0].node.get_content() == CORPUS[int(expected[1:])][0]
        assert hits[0].node.metadata == CORPUS[int(expected[1:])][1]
        check_ranking(hits, query, [f"n{i}" for i in range(len(CORPUS))])
    assert store.client.count() == len(CORPUS)


def test_query_engine_without_llm(store, monkeypatch):
    from llama_index.core import Settings

    # response_mode="no_text" never calls the LLM, but its synthesizer resolves Settings.llm
    # (OpenAI by default): make that MockLLM for this test only (Settings.llm = None would
    # too, for good).
    monkeypatch.setattr(Settings, "_llm", MockLLM())
    index = build_index(store)
    engine = index.as_query_engine(llm=MockLLM(), response_mode="no_text", similarity_top_k=2)
    response = engine.query("gradient descent for neural networks")
    assert next(n.node.node_id for n in response.source_nodes) == "n4"
    assert len(response.source_nodes) == 2
    assert asyncio.run(index.as_retriever(similarity_top_k=1).aretrieve(
        "bread and yeast"))[0].node.node_id == "n5"


def test_persists_across_reopen(db_path):
    with VecDBVectorStore(path=db_path, collection_name="kb") as store:
        retriever = build_index(store).as_retriever(similarity_top_k=4)
        before = {q: [(h.node.node_id, h.score) for h in retriever.retrieve(q)]
                  for q, _ in QUERIES}
    with VecDBVectorStore(path=db_path, collection_name="kb") as store:
        index = VectorStoreIndex.from_vector_store(store, embed_model=HashEmbedding())
        retriever = index.as_retriever(similarity_top_k=4)
        for query, _ in QUERIES:
            after = [(h.node.node_id, h.score) for h in retriever.retrieve(query)]
            assert [i for i, _ in after] == [i for i, _ in before[query]]
            np.testing.assert_allclose([s for _, s in after], [s for _, s in before[query]])
        nodes = {n.node_id: n for n in store.get_nodes()}
        for i, node in enumerate(corpus_nodes()):  # the whole node comes back
            back = nodes[node.node_id]
            assert (back.get_content(), back.metadata, back.ref_doc_id) == \
                (node.get_content(), node.metadata, f"d{i // 2}")
            assert back.excluded_embed_metadata_keys == node.excluded_embed_metadata_keys


def splitter() -> SentenceSplitter:
    """A sentence splitter that needs no tiktoken encoding and no NLTK data."""
    return SentenceSplitter(chunk_size=16, chunk_overlap=0, tokenizer=str.split,
                            chunking_tokenizer_fn=lambda t: re.split(r"(?<=[.!?])\s+", t))


def documents() -> list[Document]:
    return [Document(doc_id=f"doc-{j}", metadata={"group": j % 2},
                     text=" ".join(CORPUS[i][0] for i in range(3 * j, 3 * j + 3)))
            for j in range(3)]


def test_from_documents_and_delete_ref_doc(db_path):
    with VecDBVectorStore(path=db_path) as store:
        index = VectorStoreIndex.from_documents(
            documents(), storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=HashEmbedding(), transformations=[splitter()])
        by_doc = {}
        for node in store.get_nodes():
            by_doc.setdefault(node.ref_doc_id, []).append(node.node_id)
        assert sorted(by_doc) == ["doc-0", "doc-1", "doc-2"]
        assert all(len(ids) >= 2 for ids in by_doc.values())  # split into several nodes
        hits = index.as_retriever(similarity_top_k=1).retrieve("magma and volcanoes erupting")
        assert hits[0].node.ref_doc_id == "doc-1" and "Volcanoes" in hits[0].node.get_content()

        index.delete_ref_doc("doc-1")
        left = [(n.node_id, n.ref_doc_id) for n in store.get_nodes()]
        assert sorted(i for i, _ in left) == sorted(by_doc["doc-0"] + by_doc["doc-2"])
        hits = index.as_retriever(similarity_top_k=10).retrieve("magma and volcanoes erupting")
        assert hits and all(h.node.ref_doc_id != "doc-1" for h in hits)
        store.delete("no-such-document")  # nothing to delete: no error, nothing changes
        assert store.client.count() == len(left)
    with VecDBVectorStore(path=db_path) as store:
        assert sorted((n.node_id, n.ref_doc_id) for n in store.get_nodes()) == sorted(left)
        assert store.get_nodes(filters=MetadataFilters(filters=[
            MetadataFilter(key="ref_doc_id", value="doc-1")])) == []


OFFLINE_RUN = """
import runpy, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
print("tiktoken loaded:", "tiktoken" in sys.modules)
"""


def test_example_script_runs(tmp_path):
    """The example runs as a script (with sockets refused) and prints what it should; it
    never imports tiktoken."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (VECDB_ROOT, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", OFFLINE_RUN,
                           os.path.join(EXAMPLES, "llama_index_example.py"), str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("tiktoken loaded: False")
    sections = proc.stdout.split("'valleys carved by rivers and glaciers'")
    assert len(sections) == 4
    hits = [[line.split()[0] for line in s.splitlines()[1:] if line.startswith("  ")]
            for s in sections[1:]]
    assert [len(h) for h in hits] == [2, 2, 2] and hits[0][0] == hits[1][0] == "glaciers"
    years = re.findall(r"year=(\d+)", sections[2])
    assert len(years) == 2 and all(int(y) >= 2021 for y in years)  # the filter held
    assert not {"glaciers", "rivers"} & set(hits[2])  # document 'geography' is gone
    assert "nodes stored: 3" in proc.stdout
    assert os.path.isdir(tmp_path / "rag.vdb")


# -- metadata filters ------------------------------------------------------------------------


def F(key, value, op="=="):
    return MetadataFilter(key=key, value=value, operator=op)


def FS(*filters, condition="and"):
    return MetadataFilters(filters=list(filters), condition=condition)


FILTER_CASES = [  # (name, filters, predicate on a node's metadata and text)
    ("eq", FS(F("topic", "finance")), lambda m, t: m["topic"] == "finance"),
    ("ne", FS(F("topic", "finance", "!=")), lambda m, t: m["topic"] != "finance"),
    ("ne-sparse", FS(F("reviewer", "ann", "!=")), lambda m, t: m.get("reviewer") != "ann"),
    ("gt", FS(F("year", 2021, ">")), lambda m, t: m["year"] > 2021),
    ("gte-lt", FS(F("year", 2019, ">="), F("year", 2022, "<")),
     lambda m, t: 2019 <= m["year"] < 2022),
    ("lte-float", FS(F("rating", 3.0, "<=")), lambda m, t: m["rating"] <= 3.0),
    ("in", FS(F("topic", ["biology", "geology"], "in")),
     lambda m, t: m["topic"] in ("biology", "geology")),
    ("nin", FS(F("reviewer", ["ann", "bob"], "nin")),
     lambda m, t: m.get("reviewer") not in ("ann", "bob")),
    ("contains", FS(F("tags", "earth", "contains")), lambda m, t: "earth" in m["tags"]),
    ("any", FS(F("tags", ["food", "law"], "any")),
     lambda m, t: bool({"food", "law"} & set(m["tags"]))),
    ("all", FS(F("tags", ["money", "law"], "all")),
     lambda m, t: {"money", "law"} <= set(m["tags"])),
    ("is_empty", FS(F("reviewer", None, "is_empty")),
     lambda m, t: m.get("reviewer") in (None, "")),
    ("or", FS(F("topic", "computing"), F("year", 2019, "<"), condition="or"),
     lambda m, t: m["topic"] == "computing" or m["year"] < 2019),
    ("not", FS(F("topic", "finance"), F("year", 2022, ">"), condition="not"),
     lambda m, t: not (m["topic"] == "finance" or m["year"] > 2022)),
    ("nested", FS(F("year", 2020, ">="),
                  FS(F("tags", "food", "contains"), F("topic", "computing"), condition="or")),
     lambda m, t: m["year"] >= 2020 and ("food" in m["tags"] or m["topic"] == "computing")),
    ("nested-deep", FS(FS(FS(F("rating", 4.0, ">=")), F("topic", "geology"), condition="not"),
                       F("topic", ["nature", "geology"], "in"), condition="or"),
     lambda m, t: not (m["rating"] >= 4.0 or m["topic"] == "geology")
     or m["topic"] in ("nature", "geology")),
    ("empty", FS(), lambda m, t: True),
    ("text_match", FS(F("text", "valley", "text_match"), F("year", 2020, ">")),
     lambda m, t: "valley" in t and m["year"] > 2020),
    ("text_match-nested", FS(FS(F("text", "s", "text_match"), F("text", "ee", "text_match")),
                             F("topic", "biology", "!=")),
     lambda m, t: "s" in t and "ee" in t and m["topic"] != "biology"),
    ("ref_doc_id", FS(F("ref_doc_id", "d2")), lambda m, t: t in (CORPUS[4][0], CORPUS[5][0])),
]


@pytest.mark.parametrize("name, filters, predicate", FILTER_CASES,
                         ids=[c[0] for c in FILTER_CASES])
def test_filters_narrow_results_like_a_direct_computation(store, name, filters, predicate):
    index = build_index(store)
    allowed = [f"n{i}" for i, (t, m) in enumerate(CORPUS) if predicate(m, t)]
    query = "bees making honey from flowers"
    hits = index.as_retriever(similarity_top_k=len(CORPUS), filters=filters).retrieve(query)
    assert sorted(h.node.node_id for h in hits) == sorted(allowed)
    check_ranking(hits, query, allowed)
    few = index.as_retriever(similarity_top_k=2, filters=filters).retrieve(query)
    check_ranking(few, query, allowed)
    assert len(few) == min(2, len(allowed))
    flat = all(isinstance(f, MetadataFilter) and f.operator != FilterOperator.TEXT_MATCH
               and f.key != "ref_doc_id" for f in filters.filters) and \
        filters.condition != FilterCondition.NOT
    if flat:  # LlamaIndex's own in-memory evaluator agrees with the predicate
        reference = build_metadata_filter_fn(lambda i: CORPUS[i][1], filters)
        assert [f"n{i}" for i in range(len(CORPUS)) if reference(i)] == allowed


def test_filters_in_get_and_delete_nodes(store):
    build_index(store)
    finance = FS(F("topic", "finance"))
    assert sorted(n.node_id for n in store.get_nodes(filters=finance)) == ["n2", "n7"]
    assert [n.node_id for n in store.get_nodes(["n7", "n1", "zz"], filters=finance)] == ["n7"]
    store.delete_nodes(["n2", "n3"], filters=finance)  # both given: the listed ones that match
    assert sorted(n.node_id for n in store.get_nodes()) == \
        [f"n{i}" for i in range(10) if i != 2]
    store.delete_nodes(filters=FS(F("year", 2023, ">=")))  # n4, n7
    assert sorted(n.node_id for n in store.get_nodes()) == ["n0", "n1", "n3", "n5", "n6",
                                                             "n8", "n9"]
    store.delete_nodes(["n0", "n1"])
    store.delete_nodes([])
    assert store.client.count() == 5


def test_doc_ids_and_node_ids_restrict_the_query(store):
    build_index(store)
    query = "bees making honey from flowers"
    q = HashEmbedding().get_query_embedding(query)
    result = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=10,
                                          doc_ids=["d1", "d4"]))
    assert sorted(result.ids) == ["n2", "n3", "n8", "n9"]
    result = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=2,
                                          node_ids=["n1", "n5", "n8", "n9", "gone"]))
    want = direct_scores(query)
    best = sorted(["n1", "n5", "n8", "n9"], key=lambda i: -want[i])[:2]
    assert result.ids == best and [n.node_id for n in result.nodes] == best
    np.testing.assert_allclose(result.similarities, [want[i] for i in best], atol=1e-5)
    result = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=3,
                                          node_ids=["n1", "n5", "n8"],
                                          filters=FS(F("year", 2020, ">="))))
    assert sorted(result.ids) == ["n1", "n5"]


BAD_FILTERS = [
    (FS(F("text", "valley", "text_match_insensitive")), "text_match_insensitive"),
    (FS(F("topic", "geo", "text_match")), "'topic'"),
    (FS(F("text", "valley", "text_match"), F("year", 1, ">"), condition="or"), "OR or NOT"),
    (FS(F("topic", "finance", "in")), "takes a list"),
    (FS(F("year", [2019, 2020], ">")), "single value"),
    (FS(F("reviewer", None)), "is_empty"),
    (FS(F("tags", [], "any")), "non-empty"),
    (FS(FS(F("$bad", 1))), "key"),
]


@pytest.mark.parametrize("filters, needle", BAD_FILTERS, ids=[n for _, n in BAD_FILTERS])
def test_bad_filters_raise_clear_errors_and_change_nothing(store, filters, needle):
    index = build_index(store)
    with pytest.raises(FilterError, match=re.escape(needle)):
        index.as_retriever(filters=filters).retrieve("honey")
    with pytest.raises(FilterError, match=re.escape(needle)):
        store.delete_nodes(filters=filters)
    with pytest.raises(FilterError, match=re.escape(needle)):
        store.get_nodes(filters=filters)
    assert store.client.count() == len(CORPUS)


# -- the store's own behaviour ---------------------------------------------------------------


def embedded(nodes, model=None):
    model = model or HashEmbedding()
    for node in nodes:
        node.embedding = model.get_text_embedding(node.get_content())
    return nodes


def test_database_handle_dim_metric_and_collection_creation(db, db_path):
    store = VecDBVectorStore(database=db, collection_name="li")
    assert store.client is None and db.list_collections() == []  # created by the first add
    assert store.query(VectorStoreQuery(query_embedding=[1.0] * DIM)).ids == []
    assert store.add(embedded(corpus_nodes()[:3])) == ["n0", "n1", "n2"]
    assert (store.client.dim, store.client.metric, store.dim) == (DIM, "cosine", DIM)
    store.close()
    assert not db.closed and db.get_collection("li").count() == 3  # not ours to close
    with pytest.raises(InvalidArgumentError, match="dim=256"):
        VecDBVectorStore(database=db, collection_name="li", dim=8)
    with pytest.raises(InvalidArgumentError, match="metric='cosine'"):
        VecDBVectorStore(database=db, collection_name="li", metric="l2")
    eager = VecDBVectorStore(database=db, collection_name="l2", dim=4, metric="l2")
    assert db.get_collection("l2").metric == "l2"
    bad = TextNode(id_="x", text="x", embedding=[1.0, 2.0, 3.0])
    with pytest.raises(InvalidArgumentError, match=r"nodes\[0\]: node 'x' has a 3-dim"):
        eager.add([bad])
    assert db.get_collection("l2").count() == 0
    with pytest.raises(InvalidArgumentError, match="path/database"):
        VecDBVectorStore()
    with pytest.raises(InvalidArgumentError, match="path/database"):
        VecDBVectorStore(path=db_path, database=db)
    with pytest.raises(InvalidArgumentError, match="metric"):
        VecDBVectorStore(database=db, metric="manhattan")


def test_l2_metric_scores_and_readonly_reopen(db_path):
    with VecDBVectorStore(path=db_path, metric="l2") as store:
        nodes = [TextNode(id_=str(i), text=f"p{i}", embedding=[float(i), 0.0]) for i in range(5)]
        store.add(nodes)
        result = store.query(VectorStoreQuery(query_embedding=[2.2, 0.0], similarity_top_k=3))
        assert result.ids == ["2", "3", "1"]
        np.testing.assert_allclose(result.similarities, [-0.04, -0.64, -1.44], atol=1e-5)
        exact = store.query(VectorStoreQuery(query_embedding=[2.2, 0.0], similarity_top_k=2,
                                             node_ids=["0", "4", "3"]))
        assert exact.ids == ["3", "4"]
        np.testing.assert_allclose(exact.similarities, [-0.64, -3.24], atol=1e-5)
    reader = vecdb.open(db_path, readonly=True)
    try:
        store = VecDBVectorStore(database=reader, metric="l2")
        assert store.query(VectorStoreQuery(query_embedding=[0.1, 0.0])).ids == ["0"]
        with pytest.raises(vecdb.ReadOnlyError):
            store.add([TextNode(id_="9", text="p9", embedding=[9.0, 0.0])])
    finally:
        reader.close()


def test_add_is_all_or_nothing_and_upserts(store, db_path):
    nodes = embedded(corpus_nodes()[:2]) + [TextNode(id_="raw", text="no embedding")]
    with pytest.raises(InvalidArgumentError, match=r"nodes\[2\]: node 'raw' has no embedding"):
        store.add(nodes)
    assert store.client is None and store.database.list_collections() == []
    with pytest.raises(FilterError, match="text_match_insensitive"):  # checked up front
        store.query(VectorStoreQuery(query_embedding=[1.0] * DIM, filters=FS(
            F("text", "x", "text_match_insensitive"))))
    dup = embedded(corpus_nodes()[:1]) * 2  # rejected by vecdb after the collection was made
    with pytest.raises(vecdb.DuplicateIdError):
        store.add(dup)
    assert store.database.list_collections() == []  # dropped again: nothing changed
    with pytest.raises(InvalidArgumentError, match="nodes\\[1\\]: expected a llama_index"):
        store.add(embedded(corpus_nodes()[:1]) + ["not a node"])
    assert store.add([]) == []

    store.add(embedded(corpus_nodes()[:3]))
    changed = embedded([TextNode(id_="n1", text="Plants store energy as starch.",
                                 metadata={"topic": "biology", "year": 2025})])
    assert store.add(changed) == ["n1"]
    assert store.client.count() == 3
    (node,) = store.get_nodes(["n1"])
    assert (node.get_content(), node.metadata["year"]) == ("Plants store energy as starch.", 2025)


def test_metadata_that_cannot_be_filtered_still_round_trips(store):
    meta = {"nested": {"a": [1, {"b": 2}]}, "none": None, "empty": [], "mixed": [1, "x", None],
            "big": 2**70, "$odd": 1, "ok": True}
    store.add(embedded([TextNode(id_="m", text="metadata test", metadata=dict(meta))]))
    (node,) = store.get_nodes(["m"])
    assert node.metadata == meta
    stored = store.client.get(ids=["m"])[0].metadata
    assert {"nested", "none", "empty", "big", "$odd"}.isdisjoint(stored)
    assert stored["mixed"] == [1, "x", None] and stored["ok"] is True
    assert stored["ref_doc_id"] == "None" and "_node_content" in stored
    found = store.get_nodes(filters=FS(F("mixed", "x", "contains"), F("none", None, "is_empty"),
                                       F("empty", None, "is_empty")))
    assert [n.node_id for n in found] == ["m"]


def test_foreign_rows_come_back_as_text_nodes(store):
    store.add(embedded(corpus_nodes()[:1]))
    store.client.add(ids=["plain"], vectors=[embed(["plain row"], DIM)[0]],
                     metadatas=[{"k": 1}], documents=["plain row"])
    (node,) = store.get_nodes(["plain"])
    assert (node.node_id, node.get_content(), node.metadata) == ("plain", "plain row", {"k": 1})


def test_clear_keeps_the_collection(store):
    build_index(store)
    col = store.client
    store.clear()
    assert store.client is col and col.count() == 0 and store.get_nodes() == []
    store.clear()
    store.add(embedded(corpus_nodes()[:2]))
    assert col.count() == 2


def test_delete_nodes_needs_a_selection(store):
    build_index(store)
    with pytest.raises(InvalidArgumentError, match="clear"):
        store.delete_nodes()
    with pytest.raises(InvalidArgumentError, match="clear"):
        store.delete_nodes(filters=FS())
    with pytest.raises(InvalidArgumentError, match="node_ids"):
        store.delete_nodes("n1")
    with pytest.raises(InvalidArgumentError, match="ref_doc_id"):
        store.delete(42)
    assert store.client.count() == len(CORPUS)


# -- query modes -----------------------------------------------------------------------------


def test_mmr_prefers_novel_nodes(store):
    texts = ["Rivers flood the valley in spring.", "Rivers flood the valley in spring!",
             "Glaciers and rivers shape a valley."]
    nodes = embedded([TextNode(id_=i, text=t) for i, t in zip("abc", texts)])
    store.add(nodes)
    q = HashEmbedding().get_query_embedding("rivers flood the valley")
    plain = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=2))
    assert sorted(plain.ids) == ["a", "b"]
    mmr = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=2, mode="mmr",
                                       mmr_threshold=0.5))
    assert mmr.ids[0] == plain.ids[0] and mmr.ids[1] == "c"
    want = {i: s for i, s in zip(plain.ids, plain.similarities)}
    assert mmr.similarities[0] == pytest.approx(want[mmr.ids[0]])
    relevance = store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=2,
                                             mode="mmr"), mmr_threshold=1.0)
    assert sorted(relevance.ids) == ["a", "b"]
    index = VectorStoreIndex.from_vector_store(store, embed_model=HashEmbedding())
    hits = index.as_retriever(similarity_top_k=2, vector_store_query_mode="mmr",
                              vector_store_kwargs={"mmr_threshold": 0.5}).retrieve(
        "rivers flood the valley")
    assert [h.node.node_id for h in hits] == mmr.ids
    with pytest.raises(InvalidArgumentError, match="mmr_threshold"):
        store.query(VectorStoreQuery(query_embedding=q, mode="mmr", mmr_threshold=2))


def test_text_search_and_hybrid(store):
    index = build_index(store)
    hits = index.as_retriever(similarity_top_k=3, vector_store_query_mode="text_search",
                              ).retrieve("sourdough yeast")
    assert hits[0].node.node_id == "n5" and hits[0].score > 0
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    query = "bees making honey from flowers"
    vector_first = max(direct_scores(query).items(), key=lambda kv: kv[1])[0]
    for alpha, first in ((1.0, vector_first), (None, vector_first)):
        hits = index.as_retriever(similarity_top_k=3, vector_store_query_mode="hybrid",
                                  alpha=alpha).retrieve(query)
        assert hits[0].node.node_id == first
    hits = index.as_retriever(similarity_top_k=3, vector_store_query_mode="hybrid",
                              alpha=0.0).retrieve("sourdough yeast bread")
    assert hits[0].node.node_id == "n5"
    finance = FS(F("topic", "finance"))
    hits = index.as_retriever(similarity_top_k=5, vector_store_query_mode="text_search",
                              filters=finance).retrieve("tax rules mortgage")
    assert sorted(h.node.node_id for h in hits) == ["n2", "n7"]


def test_bad_queries_raise_clear_errors(store):
    build_index(store)
    q = HashEmbedding().get_query_embedding("honey")
    with pytest.raises(InvalidArgumentError, match="'svm' is not supported"):
        store.query(VectorStoreQuery(query_embedding=q, mode="svm"))
    with pytest.raises(InvalidArgumentError, match="query_embedding"):
        store.query(VectorStoreQuery(query_embedding=None))
    with pytest.raises(InvalidArgumentError, match="query_str"):
        store.query(VectorStoreQuery(query_embedding=q, mode="text_search"))
    with pytest.raises(InvalidArgumentError, match="node_ids"):
        store.query(VectorStoreQuery(query_str="honey", mode="text_search", node_ids=["n1"]))
    with pytest.raises(vecdb.DimensionMismatchError):
        store.query(VectorStoreQuery(query_embedding=[1.0, 2.0]))
    with pytest.raises(InvalidArgumentError, match="k"):
        store.query(VectorStoreQuery(query_embedding=q, similarity_top_k=0))


# -- packaging -------------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (VECDB_ROOT, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=60, env=env)


def test_vecdb_does_not_import_llama_index_and_a_missing_one_names_the_extra():
    proc = run_python("import sys, vecdb, vecdb.integrations\n"
                      "print(sorted(m for m in sys.modules if m.startswith('llama_index')))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    proc = run_python("import sys\nsys.modules['llama_index'] = None\n"
                      "import vecdb.integrations.llama_index")
    assert proc.returncode != 0
    assert "ImportError: vecdb.integrations.llama_index needs llama-index-core: " \
           "pip install 'vecdb[llama-index]'" in proc.stderr
