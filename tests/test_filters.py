"""Metadata and document filters (where / where_document) through get, count, delete and query.

The semantics are the module docstring of vecdb/query/filters.py; conftest.matches is an
independent plain-Python reading of it, and the property tests hold vecdb to it on random rows
and random nested filters. The unit tests below pin each rule with hand-checked expectations
(and check the reference agrees with them), the FilterError cases name what is wrong, and the
last part checks filters stay right across writes, reopen, vacuum and read-only handles.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import vecdb
from conftest import (Child, document_st, during, matches, metadata_st, random_document,
                      random_metadata, where_document_st, where_st)

DIM = 4


def vecs(ids, dim=DIM):
    """Deterministic float32 vectors, one per id (the same in every process)."""
    return np.stack([np.random.default_rng([7, zlib.crc32(str(i).encode())]).standard_normal(
        dim, dtype=np.float32) for i in ids]) if len(ids) else np.empty((0, dim), np.float32)


def ids_of(col, where=None, where_document=None, **kw):
    return [r.id for r in col.get(where=where, where_document=where_document, include=(), **kw)]


def expected(rows, where=None, where_document=None):
    """Ids of (id, metadata, document) rows that the reference says match, in order."""
    return [i for i, m, d in rows if matches(m, d, where, where_document)]


def make(db, rows, name="c", metric="l2"):
    col = db.create_collection(name, dim=DIM, metric=metric)
    if rows:
        col.add(ids=[r[0] for r in rows], vectors=vecs([r[0] for r in rows]),
                metadatas=[r[1] for r in rows], documents=[r[2] for r in rows])
    return col


def exact_filtered(rows, vectors, q, k, where=None, where_document=None):
    """(ids, distances) of the exact top-k (squared L2) among rows matching the filters."""
    keep = [j for j, (i, m, d) in enumerate(rows) if matches(m, d, where, where_document)]
    if not keep:
        return [], np.empty(0)
    d = ((vectors[keep].astype(np.float64) - q.astype(np.float64)) ** 2).sum(axis=1)
    order = np.argsort(d, kind="stable")[:k]
    return [rows[keep[j]][0] for j in order], d[order]


def assert_query_matches(col, rows, vectors, q, k, where=None, where_document=None):
    """query(where=...) returns exactly min(k, matches) matching hits, the exact top-k
    (compared by distance, so ties in distance cannot fail it)."""
    want_ids, want_d = exact_filtered(rows, vectors, q, k, where, where_document)
    hits = col.query(q, k=k, where=where, where_document=where_document, include=())
    assert len(hits) == len(want_ids), (where, where_document)
    ok = set(expected(rows, where, where_document))
    assert set(hits.ids.tolist()) <= ok
    assert len(set(hits.ids.tolist())) == len(hits)
    np.testing.assert_allclose(np.sort(hits.distances), want_d, rtol=1e-4, atol=1e-5)


# -- property tests: vecdb == the reference on random rows and filters ----------------------

optional_where = st.one_of(st.none(), st.just({}), where_st)
optional_where_document = st.one_of(st.none(), st.none(), st.just({}), where_document_st)


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """A collection of 200 random rows (every value kind of conftest's pools), and its rows
    and vectors, shared by the tests that only read."""
    rng = np.random.default_rng(11)
    rows = []
    for i in range(200):
        rid = i if i % 3 else f"s{i}"
        rows.append((rid, random_metadata(rng), random_document(rng)))
    db = vecdb.open(tmp_path_factory.mktemp("fixed") / "db", durability="off")
    col = make(db, rows)
    yield col, rows, vecs([r[0] for r in rows])
    db.close()


@settings(max_examples=300, deadline=None)
@given(where=optional_where, where_document=optional_where_document, data=st.data())
def test_get_count_query_equal_reference_on_fixed_rows(fixed, where, where_document, data):
    col, rows, vectors = fixed
    want = expected(rows, where, where_document)
    assert ids_of(col, where, where_document) == want
    assert col.count(where=where, where_document=where_document) == len(want)
    limit = data.draw(st.integers(0, 5), label="limit")
    offset = data.draw(st.integers(0, 5), label="offset")
    assert ids_of(col, where, where_document, limit=limit, offset=offset) == \
        want[offset:offset + limit]
    some = data.draw(st.lists(st.sampled_from([r[0] for r in rows]), max_size=8, unique=True),
                     label="ids")
    got = [r.id for r in col.get(ids=some + ["absent"], where=where,
                                 where_document=where_document)]
    assert got == [i for i in some if i in set(want)]
    q = vectors[data.draw(st.integers(0, len(rows) - 1), label="q")] + 0.01
    assert_query_matches(col, rows, vectors, q, 7, where, where_document)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(metadata_st, document_st), max_size=40),
       filters=st.lists(st.tuples(optional_where, optional_where_document), min_size=1,
                        max_size=4),
       doomed=where_st)
def test_random_rows_equal_reference_and_delete_where(tmp_path_factory, rows, filters, doomed):
    rows = [(i, m, d) for i, (m, d) in enumerate(rows)]
    path = tmp_path_factory.mktemp("random") / "db"
    with vecdb.open(path, durability="off") as db:
        col = make(db, rows)
        vectors = vecs([r[0] for r in rows])
        for where, where_document in filters:
            want = expected(rows, where, where_document)
            assert ids_of(col, where, where_document) == want
            assert col.count(where=where, where_document=where_document) == len(want)
            if rows:
                assert_query_matches(col, rows, vectors, vectors[0] * 0.5, 5, where,
                                     where_document)
        gone = expected(rows, doomed)
        assert col.delete(where=doomed) == len(gone)
        rest = [r for r in rows if r[0] not in set(gone)]
        assert ids_of(col) == [r[0] for r in rest]
        assert col.count(where=doomed) == 0
        for where, where_document in filters:
            assert ids_of(col, where, where_document) == expected(rest, where, where_document)
    shutil.rmtree(path, ignore_errors=True)


class FilterMachine(RuleBasedStateMachine):
    """Random writes (add, upsert, update of metadata / documents / vectors, delete by ids and
    by filter, vacuum, reopen) against a model; filters through the writer and a read-only
    handle in the same process always equal the reference on the model."""

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="vecdb-filters-")
        self.db = vecdb.open(self.dir, durability="off")
        self.col = self.db.create_collection("c", dim=DIM, metric="l2")
        self.ro = vecdb.open(self.dir, readonly=True)
        self.model = {}   # id -> (metadata, document, vector), in row order
        self.next_id = 0

    def teardown(self):
        self.ro.close()
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def rows(self):
        return [(i, m, d) for i, (m, d, _) in self.model.items()]

    def pick(self, data, label):
        return data.draw(st.lists(st.sampled_from(sorted(self.model)), min_size=1, max_size=4,
                                  unique=True), label=label)

    @rule(items=st.lists(st.tuples(metadata_st, document_st), min_size=1, max_size=8))
    def add(self, items):
        ids = list(range(self.next_id, self.next_id + len(items)))
        self.next_id += len(items)
        V = np.random.default_rng(self.next_id).standard_normal((len(ids), DIM)).astype(np.float32)
        self.col.add(ids=ids, vectors=V, metadatas=[m for m, _ in items],
                     documents=[d for _, d in items])
        for i, (m, d), v in zip(ids, items, V):
            self.model[i] = (m, d, v)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def upsert(self, data):
        ids = self.pick(data, "upsert ids")
        items = data.draw(st.lists(st.tuples(metadata_st, document_st), min_size=len(ids),
                                   max_size=len(ids)), label="upsert rows")
        V = np.random.default_rng(len(self.model)).standard_normal((len(ids), DIM)).astype(np.float32)
        self.col.upsert(ids=ids, vectors=V, metadatas=[m for m, _ in items],
                        documents=[d for _, d in items])
        for i, (m, d), v in zip(ids, items, V):
            del self.model[i]  # a new row: the item moves to the end of row order
            self.model[i] = (m, d, v)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def update_metadata(self, data):
        ids = self.pick(data, "update ids")
        metas = data.draw(st.lists(metadata_st, min_size=len(ids), max_size=len(ids)),
                          label="update metadatas")
        self.col.update(ids, metadatas=metas)
        for i, new in zip(ids, metas):
            m, d, v = self.model[i]
            if new is not None:
                m = {**(m or {}), **new}
            self.model[i] = (m, d, v)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def update_documents(self, data):
        ids = self.pick(data, "update ids")
        docs = data.draw(st.lists(document_st, min_size=len(ids), max_size=len(ids)),
                         label="update documents")
        self.col.update(ids, documents=docs)
        for i, new in zip(ids, docs):
            m, d, v = self.model[i]
            self.model[i] = (m, d if new is None else new, v)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def update_vectors(self, data):
        ids = self.pick(data, "update ids")
        V = np.random.default_rng(len(ids) + 99).standard_normal((len(ids), DIM)).astype(np.float32)
        self.col.update(ids, vectors=V)
        for i, v in zip(ids, V):
            m, d, _ = self.model.pop(i)
            self.model[i] = (m, d, v)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_ids(self, data):
        ids = self.pick(data, "delete ids")
        assert self.col.delete(ids) == len(ids)
        for i in ids:
            del self.model[i]

    @rule(where=where_st, where_document=st.one_of(st.none(), where_document_st))
    def delete_where(self, where, where_document):
        gone = expected(self.rows(), where, where_document)
        assert self.col.delete(where=where, where_document=where_document) == len(gone)
        for i in gone:
            del self.model[i]

    @precondition(lambda self: self.model)
    @rule(data=st.data(), where=where_st)
    def delete_ids_where(self, data, where):
        ids = self.pick(data, "delete ids")
        gone = [i for i in ids if matches(self.model[i][0], self.model[i][1], where)]
        assert self.col.delete(ids, where=where) == len(gone)
        for i in gone:
            del self.model[i]

    @rule()
    def vacuum(self):
        self.col.vacuum()

    @rule()
    def reopen(self):
        self.ro.close()
        self.db.close()
        self.db = vecdb.open(self.dir, durability="off")
        self.col = self.db.get_collection("c")
        self.ro = vecdb.open(self.dir, readonly=True)

    @rule(where=optional_where, where_document=optional_where_document)
    def check(self, where, where_document):
        rows = self.rows()
        want = expected(rows, where, where_document)
        for col in (self.col, self.ro.get_collection("c")):
            assert ids_of(col, where, where_document) == want
            assert col.count(where=where, where_document=where_document) == len(want)
        if rows:
            vectors = np.stack([v for _, _, v in self.model.values()])
            assert_query_matches(self.col, rows, vectors, vectors[-1] + 0.1, 5, where,
                                 where_document)

    @invariant()
    def rows_in_model_order(self):
        assert ids_of(self.col) == list(self.model)


TestFilterMachine = FilterMachine.TestCase
TestFilterMachine.settings = settings(max_examples=25, stateful_step_count=20, deadline=None,
                                      suppress_health_check=[HealthCheck.too_slow])


# -- each rule of the docstring, on hand-checked rows ----------------------------------------

ROWS = [
    ("int2", {"x": 2, "s": "b", "tags": ["a", "b"], "flag": True}, "hello world"),
    ("float2", {"x": 2.0, "s": "B", "tags": ["c"], "flag": False}, "Hello there"),
    ("float25", {"x": 2.5, "s": "ab", "tags": [], "flag": 1}, None),
    ("str2", {"x": "2", "s": "", "tags": "a", "flag": "True"}, ""),
    ("true", {"x": True, "s": "é", "tags": [1, 2.0, None]}, "world"),
    ("one", {"x": 1, "s": "\U0001F600"}, "wor"),
    ("none", {"x": None, "s": None, "tags": None}, "x"),
    ("list", {"x": [2, 3], "s": ["b"]}, None),
    ("big", {"x": 2**53 + 1}, None),
    ("bigf", {"x": 2.0**53}, None),
    ("empty", {}, None),
    ("nometa", None, "hello é"),
]
ALL_IDS = [r[0] for r in ROWS]
WITH_X = [i for i, m, _ in ROWS if m and "x" in m]


@pytest.fixture
def hand(db):
    return make(db, ROWS)


# (where, where_document, expected ids in row order): hand-checked against the docstring
CASES = [
    # rule 3 / 2: implicit and explicit $eq; int == float; str never a number; True != 1
    ({"x": 2}, None, ["int2", "float2"]),
    ({"x": 2.0}, None, ["int2", "float2"]),
    ({"x": {"$eq": 2}}, None, ["int2", "float2"]),
    ({"x": "2"}, None, ["str2"]),
    ({"x": True}, None, ["true"]),
    ({"x": 1}, None, ["one"]),
    ({"x": 1.0}, None, ["one"]),
    ({"flag": 1}, None, ["float25"]),
    ({"flag": True}, None, ["int2"]),
    ({"flag": False}, None, ["float2"]),
    ({"flag": "True"}, None, ["str2"]),
    ({"s": "b"}, None, ["int2"]),                # a list ["b"] is not a single value "b"
    ({"x": 3}, None, []),                        # nor is [2, 3] equal to 3
    # rule 2: exact int/float comparison beyond 2**53
    ({"x": 2**53 + 1}, None, ["big"]),
    ({"x": 2.0**53}, None, ["bigf"]),
    ({"x": 2**53}, None, ["bigf"]),
    ({"x": {"$gt": 2.0**53}}, None, ["big"]),
    ({"x": {"$gt": 2**53}}, None, ["big"]),
    ({"x": {"$gte": 2**53}}, None, ["big", "bigf"]),
    ({"x": {"$lt": 2**53 + 1, "$gt": 2**53 - 1}}, None, ["bigf"]),
    ({"x": {"$lte": 2**53}}, None, ["int2", "float2", "float25", "one", "bigf"]),
    # rule 4: ranges within a class only
    ({"x": {"$gt": 1}}, None, ["int2", "float2", "float25", "big", "bigf"]),
    ({"x": {"$gte": 1, "$lt": 2.5}}, None, ["int2", "float2", "one"]),
    ({"x": {"$lte": 2}}, None, ["int2", "float2", "one"]),
    ({"x": {"$gt": 1.5, "$lte": 2}}, None, ["int2", "float2"]),
    ({"x": {"$gt": "1"}}, None, ["str2"]),
    ({"x": {"$lt": 10}}, None, ["int2", "float2", "float25", "one"]),
    ({"flag": {"$gte": 0}}, None, ["float25"]),  # bools are not numbers
    # rule 4: str order by code point ("B" < "a" < "ab" < "b" < "é" < "\uffff" < emoji)
    ({"s": {"$gt": "a"}}, None, ["int2", "float25", "true", "one"]),
    ({"s": {"$lt": "b"}}, None, ["float2", "float25", "str2"]),
    ({"s": {"$gte": "b", "$lt": "\U0001F600"}}, None, ["int2", "true"]),
    ({"s": {"$gt": "\uffff"}}, None, ["one"]),
    ({"s": {"$lte": ""}}, None, ["str2"]),
    ({"s": {"$gte": ""}}, None, ["int2", "float2", "float25", "str2", "true", "one"]),
    # rule 5: $ne / $nin need the field; None and lists match them
    ({"x": {"$ne": 2}}, None, ["float25", "str2", "true", "one", "none", "list", "big", "bigf"]),
    ({"x": {"$ne": True}}, None, [i for i in WITH_X if i != "true"]),
    ({"x": {"$ne": 1}}, None, [i for i in WITH_X if i != "one"]),
    ({"x": {"$nin": [2, True]}}, None, ["float25", "str2", "one", "none", "list", "big", "bigf"]),
    ({"x": {"$nin": []}}, None, WITH_X),
    ({"s": {"$ne": "b"}}, None, ["float2", "float25", "str2", "true", "one", "none", "list"]),
    # rule 3: $in
    ({"x": {"$in": [2, "2"]}}, None, ["int2", "float2", "str2"]),
    ({"x": {"$in": []}}, None, []),
    ({"x": {"$in": [1]}}, None, ["one"]),
    ({"x": {"$in": [True, 2.5]}}, None, ["float25", "true"]),
    ({"x": {"$in": [2**53 + 1, 3]}}, None, ["big"]),
    # rule 6: $contains on list values
    ({"tags": {"$contains": "a"}}, None, ["int2"]),   # "a" (a str, not a list) is not
    ({"tags": {"$contains": 2}}, None, ["true"]),     # 2.0 in the list
    ({"tags": {"$contains": 1.0}}, None, ["true"]),
    ({"tags": {"$contains": True}}, None, []),
    ({"s": {"$contains": "b"}}, None, ["list"]),
    ({"x": {"$contains": 3}}, None, ["list"]),
    ({"x": {"$contains": 2, "$ne": 2}}, None, ["list"]),
    # rule 7 / 8: $exists, missing fields
    ({"x": {"$exists": True}}, None, WITH_X),
    ({"x": {"$exists": False}}, None, ["empty", "nometa"]),
    ({"tags": {"$exists": True}}, None, ["int2", "float2", "float25", "str2", "true", "none"]),
    ({"nofield": {"$ne": 1}}, None, []),
    ({"nofield": {"$nin": [1]}}, None, []),
    ({"nofield": {"$exists": False}}, None, ALL_IDS),
    ({"$not": {"nofield": 1}}, None, ALL_IDS),
    ({"$not": {"x": {"$ne": 2}}}, None, ["int2", "float2", "empty", "nometa"]),
    ({"x": {"$gt": -1e300}}, None, ["int2", "float2", "float25", "one", "big", "bigf"]),
    # rule 9: logic, several fields, several operators
    ({"x": 2, "s": "b"}, None, ["int2"]),
    ({"$or": [{"x": 1}, {"s": "B"}]}, None, ["float2", "one"]),
    ({"$and": [{"x": {"$gte": 2}}, {"s": {"$ne": "b"}}]}, None, ["float2", "float25"]),
    ({"$not": {"$or": [{"x": {"$exists": False}}, {"x": {"$in": [2, 1]}}]}}, None,
     ["float25", "str2", "true", "none", "list", "big", "bigf"]),
    ({"$or": [{"$and": [{"$not": {"x": 2}}, {"tags": {"$exists": True}}]}, {"s": "b"}]}, None,
     ["int2", "float25", "str2", "true", "none"]),
    ({"$and": [{"$or": [{"$not": {"$and": [{"x": {"$gte": 2}}]}}]}], "s": {"$exists": True}},
     None, ["str2", "true", "one", "none", "list"]),
    ({"$not": {}}, None, []),
    ({"$and": [{}]}, None, ALL_IDS),
    # rule 10: documents
    (None, {"$contains": "world"}, ["int2", "true"]),
    (None, {"$contains": "hello"}, ["int2", "nometa"]),     # case-sensitive
    (None, {"$contains": "Hello"}, ["float2"]),
    (None, {"$contains": "wor"}, ["int2", "true", "one"]),
    (None, {"$contains": "é"}, ["nometa"]),
    (None, {"$not_contains": "hello"},
     ["float2", "float25", "str2", "true", "one", "none", "list", "big", "bigf", "empty"]),
    (None, {"$or": [{"$contains": "there"}, {"$contains": "x"}]}, ["float2", "none"]),
    (None, {"$and": [{"$contains": "o"}, {"$not": {"$contains": "l"}}]}, ["one"]),
    (None, {"$contains": "o", "$not_contains": "l"}, ["one"]),
    # rule 11: both must hold; None / {} filter nothing
    ({"x": {"$exists": True}}, {"$contains": "wor"}, ["int2", "true", "one"]),
    ({"x": 2}, {"$contains": "Hello"}, ["float2"]),
    ({}, None, ALL_IDS),
    (None, {}, ALL_IDS),
    ({}, {}, ALL_IDS),
    (None, None, ALL_IDS),
]


@pytest.mark.parametrize("where, where_document, want", CASES,
                         ids=[f"{i}:{c[0]}|{c[1]}" for i, c in enumerate(CASES)])
def test_rule(hand, where, where_document, want):
    assert expected(ROWS, where, where_document) == want, "the reference disagrees"
    assert ids_of(hand, where, where_document) == want
    assert hand.count(where=where, where_document=where_document) == len(want)


def test_values_python_finds_equal_are_not_confused(hand):
    """True == 1 == 1.0 and False == 0 (with equal hashes) in Python, and so are filter trees
    holding them: whatever caches evaluations must still tell a bool from a number (rule 2),
    whichever is asked first."""
    sequence = [
        ({"x": True}, ["true"]), ({"x": 1}, ["one"]), ({"x": 1.0}, ["one"]),
        ({"flag": False}, ["float2"]), ({"flag": 0}, []), ({"flag": 1}, ["float25"]),
        ({"flag": True}, ["int2"]), ({"flag": 1.0}, ["float25"]),
        ({"x": {"$in": [True]}}, ["true"]), ({"x": {"$in": [1]}}, ["one"]),
        ({"x": {"$ne": 1}}, [i for i in WITH_X if i != "one"]),
        ({"x": {"$ne": True}}, [i for i in WITH_X if i != "true"]),
        ({"x": {"$nin": [True]}}, [i for i in WITH_X if i != "true"]),
        ({"x": {"$nin": [1]}}, [i for i in WITH_X if i != "one"]),
        ({"tags": {"$contains": 1}}, ["true"]), ({"tags": {"$contains": True}}, []),
        ({"x": 2.0}, ["int2", "float2"]), ({"x": 2}, ["int2", "float2"]),
    ]
    for order in (sequence, sequence[::-1], sequence):
        for where, want in order:
            assert expected(ROWS, where) == want
            assert ids_of(hand, where) == want, where
            assert hand.count(where=where) == len(want), where
            hits = hand.query(vecs(["q"])[0], k=20, where=where, include=())
            assert sorted(hits.ids.tolist()) == sorted(want), where


def test_odd_field_names(db_path):
    names = ["a/b", "../x", "a.b", "ü", " ", "x" * 300, "a\x00b", "A", "a", ".", "..", "é" * 200]
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=2, metric="l2")
        col.add(ids=list(range(len(names))), vectors=[[i, 0] for i in range(len(names))],
                metadatas=[{n: i} for i, n in enumerate(names)])
        for i, n in enumerate(names):
            assert ids_of(col, {n: i}) == [i], n
    with vecdb.open(db_path, readonly=True) as db:
        col = db.get_collection("c")
        for i, n in enumerate(names):
            assert ids_of(col, {n: {"$gte": 0}}) == [i], n
            assert ids_of(col, {n: {"$exists": False}}) == [j for j in range(len(names)) if j != i]


def test_filters_on_a_flat_index(db):
    col = db.create_collection("c", dim=DIM, metric="ip", index=vecdb.Flat())
    col.add(ids=ALL_IDS, vectors=vecs(ALL_IDS), metadatas=[m for _, m, _ in ROWS],
            documents=[d for _, _, d in ROWS])
    q = vecs(["q"])[0]
    for where, where_document, want in CASES:
        assert ids_of(col, where, where_document) == want
        hits = col.query(q, k=5, where=where, where_document=where_document, include=())
        assert len(hits) == min(5, len(want)) and set(hits.ids.tolist()) <= set(want)
        info = col.explain(q, k=5, where=where, where_document=where_document)
        assert info["matches"] == len(want)
        if want:  # with no match: test_explain_plan_with_no_matches
            assert info["plan"] == "exact"


def test_explain_plan_with_no_matches(hand):
    """The issue's explain contract: "plan" is "exact" or "hnsw", also when nothing matches
    (and on an empty collection), with matches 0."""
    q = vecs(["q"])[0]
    info = hand.explain(q, k=3, where={"x": "no such value"})
    assert info["matches"] == 0 and info["selectivity"] == 0
    assert info["plan"] in ("exact", "hnsw"), info


def test_numpy_scalars_and_arrays_are_plain_values(hand):
    assert ids_of(hand, {"x": np.int64(2)}) == ["int2", "float2"]
    assert ids_of(hand, {"x": np.float32(2.5)}) == ["float25"]
    assert ids_of(hand, {"x": np.bool_(True)}) == ["true"]
    assert ids_of(hand, {"x": {"$in": np.array([2.5, 1.0])}}) == ["float25", "one"]
    assert ids_of(hand, {"x": {"$gt": np.uint64(2**53)}}) == ["big"]
    assert ids_of(hand, {"s": np.str_("b")}) == ["int2"]


def test_filters_on_query_and_explain(hand):
    vectors = vecs(ALL_IDS)
    for where, where_document, want in CASES[::3]:
        for k in (1, 3, 20):
            assert_query_matches(hand, ROWS, vectors, vectors[4], k, where, where_document)
        info = hand.explain(vectors[0], k=3, where=where, where_document=where_document)
        assert info["matches"] == len(want) and info["live"] == len(ROWS)
        assert isinstance(info["filter"], str)
    res = hand.query(vectors[:3], k=2, where={"x": 2}, explain=True)
    assert [sorted(r.ids.tolist()) for r in res] == [["float2", "int2"]] * 3
    assert all(r.explain["matches"] == 2 for r in res)
    assert hand.query(vectors[0], k=2, where={"x": 2}).explain is None


# -- FilterError: bad filters name what is wrong and change nothing --------------------------

BAD = [
    # (where, where_document, words the message must hold)
    ({"fld": {"$foo": 1}}, None, ["$foo", "fld"]),
    ({"$foo": [{"fld": 1}]}, None, ["$foo"]),
    ({"$or": [{"fld": 1}, {"$and": [{"deep": {"$bad": 1}}]}]}, None, ["$bad", "deep"]),
    ({"fld": {"$in": 7}}, None, ["$in", "fld", "7"]),
    ({"fld": {"$in": "abc"}}, None, ["$in", "fld", "abc"]),
    ({"fld": {"$nin": {"a": 1}}}, None, ["$nin", "fld"]),
    ({"fld": {"$eq": [1, 2]}}, None, ["$eq", "fld", "[1, 2]"]),
    ({"fld": [1, 2]}, None, ["fld", "[1, 2]"]),
    ({"fld": {"$gt": [1]}}, None, ["$gt", "fld", "[1]"]),
    ({"fld": {"$contains": [1]}}, None, ["$contains", "fld", "[1]"]),
    ({"fld": {"$in": [1, [2]]}}, None, ["$in", "fld", "[2]"]),
    ({"fld": {"$eq": {"a": 1}}}, None, ["$eq", "fld"]),
    ({"$and": []}, None, ["$and"]),
    ({"$or": []}, None, ["$or"]),
    ({"$and": {"fld": 1}}, None, ["$and"]),
    ({"$not": [{"fld": 1}]}, None, ["$not"]),
    ({"fld": None}, None, ["fld", "None"]),
    ({"fld": {"$ne": None}}, None, ["$ne", "fld", "None"]),
    ({"fld": {"$in": [1, None]}}, None, ["$in", "fld", "None"]),
    ({"fld": float("nan")}, None, ["fld", "nan"]),
    ({"fld": {"$lt": float("inf")}}, None, ["$lt", "fld", "inf"]),
    ({"fld": {"$gte": np.float64("nan")}}, None, ["$gte", "fld", "nan"]),
    ({"fld": {"$gt": True}}, None, ["$gt", "fld", "True"]),
    ({"fld": {"$lte": False}}, None, ["$lte", "fld", "False"]),
    ({"fld": 2**63}, None, ["fld", str(2**63)]),
    ({"fld": {"$in": [-(2**63) - 1]}}, None, ["$in", "fld", str(-(2**63) - 1)]),
    ({"fld": {"$exists": 1}}, None, ["$exists", "fld"]),
    ({"fld": {"$and": [{"fld": 1}]}}, None, ["$and", "fld"]),
    ({"fld": {}}, None, ["fld", "{}"]),
    ({"fld": b"bytes"}, None, ["fld", "bytes"]),
    ({1: 2}, None, ["1"]),
    (["fld"], None, ["where", "list"]),
    ("fld", None, ["where", "fld"]),
    (None, {"$contains": ""}, ["where_document", "$contains"]),
    (None, {"$not_contains": 5}, ["where_document", "$not_contains", "5"]),
    (None, {"$regex": "a"}, ["where_document", "$regex"]),
    (None, {"$and": []}, ["where_document", "$and"]),
    (None, "text", ["where_document", "text"]),
    (None, {"$or": [{"$contains": "a"}, {"$contains": None}]}, ["$contains", "None"]),
    ({"fld": 1}, {"$contains": ""}, ["where_document", "$contains"]),
]


@pytest.mark.parametrize("where, where_document, words", BAD,
                         ids=[f"{i}:{c[0]!r}|{c[1]!r}" for i, c in enumerate(BAD)])
def test_bad_filter_raises_filter_error_naming_it_and_changes_nothing(hand, where,
                                                                       where_document, words):
    before = [(r.id, r.metadata, r.document) for r in hand.get()]
    calls = {
        "get": lambda: hand.get(where=where, where_document=where_document),
        "get ids": lambda: hand.get(ids=["int2"], where=where, where_document=where_document),
        "count": lambda: hand.count(where=where, where_document=where_document),
        "delete": lambda: hand.delete(where=where, where_document=where_document),
        "delete ids": lambda: hand.delete(["int2", "one"], where=where,
                                          where_document=where_document),
        "query": lambda: hand.query(vecs(["q"])[0], k=3, where=where,
                                    where_document=where_document),
        "query batch": lambda: hand.query(vecs(["q", "r"]), k=3, where=where,
                                          where_document=where_document),
        "explain": lambda: hand.explain(vecs(["q"])[0], k=3, where=where,
                                        where_document=where_document),
    }
    for name, call in calls.items():
        with pytest.raises(vecdb.FilterError) as info:
            call()
        assert isinstance(info.value, vecdb.InvalidArgumentError)
        assert isinstance(info.value, ValueError)
        message = str(info.value)
        for word in words:
            assert word in message, f"{name}: {word!r} not in {message!r}"
    assert [(r.id, r.metadata, r.document) for r in hand.get()] == before
    assert hand.count() == len(ROWS)


def test_bad_filter_raises_on_an_empty_collection(db):
    col = db.create_collection("c", dim=DIM, metric="l2")
    for call in (lambda: col.query(np.zeros(DIM), where={"x": {"$bad": 1}}),
                 lambda: col.query(np.zeros((2, DIM)), where={"x": None}),
                 lambda: col.get(where={"$and": []}),
                 lambda: col.count(where_document={"$contains": ""}),
                 lambda: col.delete(where={"x": [1]}),
                 lambda: col.explain(np.zeros(DIM), where={"x": {"$gt": True}})):
        with pytest.raises(vecdb.FilterError):
            call()


def test_delete_needs_ids_or_a_filter(hand):
    for call in (lambda: hand.delete(), lambda: hand.delete(where={}),
                 lambda: hand.delete(where=None), lambda: hand.delete(where_document={}),
                 lambda: hand.delete(where={}, where_document={})):
        with pytest.raises(vecdb.InvalidArgumentError):
            call()
    assert hand.count() == len(ROWS)


# -- delete / get with filters ----------------------------------------------------------------

def test_delete_where_returns_count_and_deletes_exactly_the_matches(hand):
    assert hand.delete(where={"x": 2}) == 2
    assert hand.delete(where={"x": 2}) == 0
    assert hand.get(ids=["int2", "float2"]) == []
    assert hand.delete(where={"x": {"$exists": True}}, where_document={"$contains": "wor"}) == 2
    left = [i for i in ALL_IDS if i not in ("int2", "float2", "true", "one")]
    assert ids_of(hand) == left and hand.count() == len(left)
    assert hand.delete(["str2", "none", "nometa", "absent"], where={"x": {"$exists": True}}) == 2
    left = [i for i in left if i not in ("str2", "none")]
    assert ids_of(hand) == left
    assert hand.delete(where_document={"$contains": "hello"}) == 1  # nometa
    assert ids_of(hand) == [i for i in left if i != "nometa"]
    hits = hand.query(vecs(["int2"])[0], k=20, where={"x": {"$exists": True}})
    assert sorted(hits.ids.tolist()) == ["big", "bigf", "float25", "list"]


def test_get_where_with_limit_offset_and_ids(db):
    rows = [(i, {"even": i % 2 == 0, "i": i}, f"doc {i}") for i in range(30)]
    col = make(db, rows)
    evens = list(range(0, 30, 2))
    assert ids_of(col, {"even": True}) == evens
    assert ids_of(col, {"even": True}, limit=4) == evens[:4]
    assert ids_of(col, {"even": True}, limit=4, offset=3) == evens[3:7]
    assert ids_of(col, {"even": True}, offset=14) == evens[14:]
    assert ids_of(col, {"even": True}, offset=15) == []
    assert ids_of(col, {"even": True}, limit=0) == []
    assert ids_of(col, {"even": True}, limit=100, offset=10) == evens[10:]
    # ids and where: those ids, in the given order, that match
    got = col.get(ids=[9, 8, 4, 99, 3, 0], where={"even": True})
    assert [r.id for r in got] == [8, 4, 0]
    assert got[0].metadata == {"even": True, "i": 8} and got[0].document == "doc 8"
    assert [r.id for r in col.get(ids=[5, 6], where_document={"$contains": "5"})] == [5]
    assert col.get(ids=[], where={"even": True}) == []
    # deletes and upserts keep the row order: an upserted item moves to the end
    col.delete([2, 4])
    col.upsert(ids=[0], vectors=vecs([0]), metadatas=[{"even": True, "i": 0}])
    assert ids_of(col, {"even": True}) == evens[3:] + [0]
    assert ids_of(col, {"even": True}, limit=3, offset=11) == [28, 0]
    assert ids_of(col, {"i": {"$lt": 10}}, limit=3, offset=1) == [3, 5, 6]


def test_get_include_with_where(hand):
    r = hand.get(where={"x": 2.5}, include=("metadata", "document", "vector"))
    assert len(r) == 1 and r[0].id == "float25"
    assert r[0].metadata == ROWS[2][1] and r[0].document is None
    np.testing.assert_array_equal(r[0].vector, vecs(["float25"])[0])


# -- filters stay right across writes, reopen, vacuum and read-only handles ------------------

def test_filters_after_reopen(db_path):
    with vecdb.open(db_path) as db:
        make(db, ROWS)
        assert ids_of(db.get_collection("c"), {"x": 2}) == ["int2", "float2"]
    for readonly in (False, True):
        with vecdb.open(db_path, readonly=readonly) as db:
            col = db.get_collection("c")
            for where, where_document, want in CASES:
                assert ids_of(col, where, where_document) == want, (where, where_document)
                assert col.count(where=where, where_document=where_document) == len(want)


def test_filters_after_upsert_see_only_new_values(hand):
    assert hand.count(where={"x": 2}) == 2
    hand.upsert(ids=["int2", "new"], vectors=vecs(["int2", "new"]),
                metadatas=[{"x": 99}, {"x": 2}], documents=[None, "brand new"])
    assert ids_of(hand, {"x": 2}) == ["float2", "new"]
    assert ids_of(hand, {"x": 99}) == ["int2"]
    assert ids_of(hand, {"s": "b"}) == []                 # old keys gone: upsert replaces
    assert ids_of(hand, {"tags": {"$exists": True}}) == ["float2", "float25", "str2", "true",
                                                         "none"]
    assert ids_of(hand, None, {"$contains": "hello world"}) == []
    assert ids_of(hand, None, {"$contains": "new"}) == ["new"]
    q = vecs(["int2"])[0]
    assert "int2" not in hand.query(q, k=20, where={"x": 2}).ids.tolist()
    assert hand.query(q, k=20, where={"x": 99}).ids.tolist() == ["int2"]
    hand.upsert(ids=["float2"], vectors=vecs(["float2"]))   # no metadata: no fields
    assert ids_of(hand, {"x": {"$exists": False}}) == ["empty", "nometa", "float2"]


def test_filters_after_update_of_metadata_only(hand):
    hand.update(["int2", "empty", "nometa"],
                metadatas=[{"x": 5, "new": "n"}, {"x": 2.0}, {"x": "2"}])
    assert ids_of(hand, {"x": 2}) == ["float2", "empty"]
    assert ids_of(hand, {"x": "2"}) == ["str2", "nometa"]
    assert ids_of(hand, {"s": "b"}) == ["int2"]           # merged: other keys stay
    assert ids_of(hand, {"new": "n"}) == ["int2"]
    assert ids_of(hand, {"x": {"$gt": 4}}) == ["int2", "big", "bigf"]
    assert ids_of(hand, None, {"$contains": "hello world"}) == ["int2"]  # document unchanged
    hand.update(["int2"], metadatas=[{"x": None}])
    assert ids_of(hand, {"x": {"$gt": 4}}) == ["big", "bigf"]
    assert "int2" in ids_of(hand, {"x": {"$exists": True}})
    assert "int2" in ids_of(hand, {"x": {"$ne": 5}})
    hand.update(["int2"], metadatas=[{"tags": "plain"}])  # a list value becomes a str
    assert "int2" not in ids_of(hand, {"tags": {"$contains": "a"}})
    assert "int2" in ids_of(hand, {"tags": "plain"})
    assert hand.query(vecs(["int2"])[0], k=1, where={"new": "n"}).ids.tolist() == ["int2"]
    assert ids_of(hand) == ALL_IDS                        # no row moved


def test_filters_after_update_of_documents_only(hand):
    hand.update(["int2", "float25", "nometa"], documents=["goodbye", "hello again", None])
    assert ids_of(hand, None, {"$contains": "hello"}) == ["float25", "nometa"]
    assert ids_of(hand, None, {"$contains": "goodbye"}) == ["int2"]
    assert ids_of(hand, {"x": 2}) == ["int2", "float2"]  # metadata unchanged
    assert hand.count(where_document={"$not_contains": "world"}) == len(ROWS) - 1
    assert hand.query(vecs(["int2"])[0], k=1,
                      where_document={"$contains": "good"}).ids.tolist() == ["int2"]


def test_filters_after_update_of_vectors(hand):
    hand.update(["int2"], vectors=vecs(["elsewhere"]))
    assert ids_of(hand, {"x": 2}) == ["float2", "int2"]
    assert hand.query(vecs(["elsewhere"])[0], k=1, where={"s": "b"}).ids.tolist() == ["int2"]


def test_new_fields_and_type_changes_after_first_filter(hand):
    assert hand.count(where={"later": 1}) == 0
    hand.add(ids=["late"], vectors=vecs(["late"]), metadatas=[{"later": 1, "x": "z"}])
    assert ids_of(hand, {"later": 1}) == ["late"]
    assert ids_of(hand, {"x": {"$gt": "1"}}) == ["str2", "late"]
    hand.update(["one"], metadatas=[{"later": 1.0, "x": "1"}])
    assert ids_of(hand, {"later": 1}) == ["one", "late"]
    assert ids_of(hand, {"x": {"$gte": 1}}) == ["int2", "float2", "float25", "big", "bigf"]
    assert ids_of(hand, {"x": {"$gte": "1"}}) == ["str2", "one", "late"]


def test_filters_after_delete_and_vacuum(db_path):
    with vecdb.open(db_path) as db:
        col = make(db, ROWS)
        col.delete(["float2", "true"])
        col.upsert(ids=["int2"], vectors=vecs(["int2"]), metadatas=[{"x": 3}])
        rows = [r for r in ROWS if r[0] not in ("float2", "true", "int2")] + \
            [("int2", {"x": 3}, None)]
        for where, where_document, _ in CASES:
            assert ids_of(col, where, where_document) == \
                expected(rows, where, where_document), (where, where_document)
        col.vacuum()
        assert ids_of(col) == [r[0] for r in rows]
        for where, where_document, _ in CASES:
            want = expected(rows, where, where_document)
            assert ids_of(col, where, where_document) == want, (where, where_document)
            assert col.count(where=where, where_document=where_document) == len(want)
        col.add(ids=["after"], vectors=vecs(["after"]), metadatas=[{"x": 2}])
        rows.append(("after", {"x": 2}, None))
        assert ids_of(col, {"x": {"$in": [2, 3]}}) == ["int2", "after"]
    with vecdb.open(db_path, readonly=True) as db:
        col = db.get_collection("c")
        for where, where_document, _ in CASES:
            assert ids_of(col, where, where_document) == \
                expected(rows, where, where_document), (where, where_document)


@pytest.mark.parametrize("first", ["empty", "some rows"])
def test_vacuum_keeps_writes_made_since_the_last_filter(db_path, first):
    """Filters read before a vacuum, then writes with no filtered read between them and the
    vacuum: the vacuumed collection must still see every write (writer, reopen, read-only)."""
    rows = [(i, {"a": i % 3, "i": i}, f"doc {i % 2}") for i in range(12)]
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2")
        start = 0 if first == "empty" else 4
        if start:
            col.add(ids=list(range(start)), vectors=vecs(range(start)),
                    metadatas=[m for _, m, _ in rows[:start]],
                    documents=[d for _, _, d in rows[:start]])
        assert col.count(where={"a": 1}) == len(expected(rows[:start], {"a": 1}))
        assert col.count(where_document={"$contains": "1"}) == \
            len(expected(rows[:start], None, {"$contains": "1"}))
        col.add(ids=list(range(start, 12)), vectors=vecs(range(start, 12)),
                metadatas=[m for _, m, _ in rows[start:]],
                documents=[d for _, _, d in rows[start:]])
        col.update([0, 5], metadatas=[{"a": 7}, {"a": 7}], documents=["doc 1", "doc 1"])
        col.delete([1, 6])
        model = {i: (m, d) for i, m, d in rows}
        for i in (0, 5):
            model[i] = ({**model[i][0], "a": 7}, "doc 1")
        for i in (1, 6):
            del model[i]
        live = [(i, m, d) for i, (m, d) in model.items()]
        col.vacuum()
        checks = [({"a": 1}, None), ({"a": 7}, None), ({"i": {"$gte": 0}}, None),
                  (None, {"$contains": "1"}), ({"a": {"$ne": 7}}, {"$contains": "0"})]

        def check(c, tag):
            for where, where_document in checks:
                want = expected(live, where, where_document)
                assert ids_of(c, where, where_document) == want, (tag, where, where_document)
                assert c.count(where=where, where_document=where_document) == len(want)

        check(col, "after vacuum")
    with vecdb.open(db_path) as db:
        check(db.get_collection("c"), "after reopen")
    with vecdb.open(db_path, readonly=True) as db:
        check(db.get_collection("c"), "read-only")


def test_filters_after_auto_vacuum(db_path):
    n = 2100
    with vecdb.open(db_path, durability="off", auto_vacuum=0.5) as db:
        col = db.create_collection("c", dim=DIM, metric="l2")
        rng = np.random.default_rng(3)
        col.add(ids=list(range(n)), vectors=rng.standard_normal((n, DIM)).astype(np.float32),
                metadatas=[{"m": i % 7, "i": i} for i in range(n)])
        assert col.delete(where={"i": {"$lt": 1100}}) == 1100   # crosses the auto_vacuum share
        assert col.stats()["live"] == n - 1100
        want = [i for i in range(1100, n) if i % 7 == 3]
        assert ids_of(col, {"m": 3}) == want
        assert col.count(where={"m": 3}) == len(want)
        hits = col.query(np.zeros(DIM, np.float32), k=50, where={"m": 3}, include=())
        assert len(hits) == 50 and set(hits.ids.tolist()) <= set(want)


def test_readonly_handle_in_same_process_sees_writes(db_path):
    with vecdb.open(db_path) as db:
        col = make(db, ROWS[:3])
        with vecdb.open(db_path, readonly=True) as ro:
            rcol = ro.get_collection("c")
            assert ids_of(rcol, {"x": 2}) == ["int2", "float2"]
            col.add(ids=["n1", "n2"], vectors=vecs(["n1", "n2"]),
                    metadatas=[{"x": 2, "k": "v"}, {"k": "v"}], documents=["fresh", None])
            assert ids_of(rcol, {"x": 2}) == ["int2", "float2", "n1"]
            assert ids_of(rcol, {"k": "v"}) == ["n1", "n2"]
            assert rcol.count(where_document={"$contains": "fresh"}) == 1
            col.update(["int2", "n2"], metadatas=[{"x": 7}, {"x": 2}])
            assert ids_of(rcol, {"x": 2}) == ["float2", "n1", "n2"]
            assert rcol.query(vecs(["int2"])[0], k=1, where={"x": 7}).ids.tolist() == ["int2"]
            col.update(["float2"], documents=["now fresh too"])
            assert ids_of(rcol, None, {"$contains": "fresh"}) == ["float2", "n1"]
            col.upsert(ids=["n1"], vectors=vecs(["n1"]), metadatas=[{"x": 3}])
            assert ids_of(rcol, {"x": 2}) == ["float2", "n2"]
            col.delete(where={"x": 3})
            assert ids_of(rcol, {"x": {"$exists": True}}) == ["int2", "float2", "float25", "n2"]
            col.vacuum()
            assert ids_of(rcol, {"x": 2}) == ["float2", "n2"]
            assert rcol.count(where={"x": {"$gt": 2}}) == 2


READER = """
import json, sys
import numpy as np
import vecdb
db = vecdb.open(sys.argv[1], readonly=True, timeout=0)
col = db.get_collection("c")
print("ready", flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    w, wd = cmd.get("where"), cmd.get("where_document")
    hits = col.query(np.asarray(cmd["q"], dtype=np.float32), k=cmd["k"], where=w,
                     where_document=wd, include=())
    print(json.dumps({"ids": [r.id for r in col.get(where=w, where_document=wd, include=())],
                      "count": col.count(where=w, where_document=wd),
                      "nn": hits.ids.tolist()}), flush=True)
"""


def test_readonly_process_sees_metadata_writes(tmp_path):
    path = str(tmp_path / "db")
    with vecdb.open(path) as db:
        col = make(db, ROWS[:2])
        reader = Child(READER, path)
        try:
            assert reader.line() == "ready"

            def ask(where=None, where_document=None, q="int2", k=20):
                reader.send({"where": where, "where_document": where_document,
                             "q": vecs([q])[0].tolist(), "k": k})
                seen = json.loads(reader.line())
                assert seen["count"] == len(seen["ids"])
                assert len(seen["nn"]) == min(k, seen["count"])
                assert set(seen["nn"]) <= set(seen["ids"])
                return seen["ids"]

            assert ask({"x": 2}) == ["int2", "float2"]
            col.add(ids=[i for i, _, _ in ROWS[2:]], vectors=vecs([i for i, _, _ in ROWS[2:]]),
                    metadatas=[m for _, m, _ in ROWS[2:]], documents=[d for _, _, d in ROWS[2:]])
            for where, where_document, want in CASES[::2]:
                assert ask(where, where_document) == want, (where, where_document)
            col.update(["str2"], metadatas=[{"x": 2}])            # metadata only
            assert ask({"x": 2}) == ["int2", "float2", "str2"]
            col.update(["one"], documents=["hello one"])          # document only
            assert ask(None, {"$contains": "hello"}) == ["int2", "one", "nometa"]
            col.upsert(ids=["int2"], vectors=vecs(["int2"]), metadatas=[{"x": "two"}])
            assert ask({"x": 2}) == ["float2", "str2"]
            assert ask({"x": "two"}, q="int2", k=1) == ["int2"]
            col.delete(where={"x": {"$in": [2, 2.5]}})
            assert ask({"x": {"$exists": True}}) == ["true", "one", "none", "list", "big",
                                                     "bigf", "int2"]
            col.vacuum()
            assert ask({"x": {"$gt": 1}}) == ["big", "bigf"]
        finally:
            rc, err = reader.close()
    assert rc == 0, err


def test_filtered_reads_in_threads_during_writes(db_path):
    """Filtered queries, gets and counts from threads while one thread adds, upserts and
    deletes: every hit and record matches the filter (a row's metadata never changes in
    place here, so a returned record is the one the filter saw)."""
    where = {"$or": [{"tag": {"$lt": 3}}, {"name": {"$in": ["x", "y"]}}]}

    def meta(i):
        return {"tag": i % 10, "name": "xyz"[i % 3]}

    with vecdb.open(db_path, durability="normal") as db:
        col = db.create_collection("c", dim=DIM, metric="l2")
        col.add(ids=list(range(100)), vectors=vecs(range(100)),
                metadatas=[meta(i) for i in range(100)])

        def reader(rng):
            q = rng.standard_normal(DIM).astype(np.float32)
            for h in col.query(q, k=10, where=where):
                assert matches(h.metadata, None, where), h
            for r in col.get(where=where, limit=20, offset=int(rng.integers(0, 20))):
                assert matches(r.metadata, None, where), r
            assert col.count(where=where) >= 0

        def writer():
            for step in range(40):
                base = 100 + step * 10
                ids = list(range(base, base + 10))
                col.add(ids=ids, vectors=vecs(ids), metadatas=[meta(i) for i in ids])
                col.upsert(ids=[base - 50], vectors=vecs([base]), metadatas=[meta(base + 1)])
                if step % 7 == 0:
                    col.delete(where={"tag": step % 10})
                else:
                    col.delete([base - 30])

        during(writer, reader, threads=2)
        want = [r.id for r in col.get(include=("metadata",)) if matches(r.metadata, None, where)]
        assert ids_of(col, where) == want and col.count(where=where) == len(want)
