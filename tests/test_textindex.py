"""The text index's postings stay in step with the rows (vecdb/textindex.py): after every
kind of write the postings and corpus statistics in LMDB equal a recomputation from the
stored records."""

import numpy as np
import pytest

import vecdb
from conftest import text_index_state
from vecdb.query.tokenize import term_counts
from vecdb.storage import postings

DOCS = ["AAPL beats estimates; Apple shares rise",
        "gpt-4o release notes v2.1.0",
        "apple pie recipe",
        None,
        "",
        "foo_bar raised an error in module foo"]


def _col(db, text_index=True, n=len(DOCS), dim=4):
    col = db.create_collection("c", dim=dim, metric="l2", text_index=text_index)
    rng = np.random.default_rng(0)
    col.add(ids=list(range(n)), vectors=rng.random((n, dim)), documents=DOCS[:n])
    return col


def _postings_of(db, col, term):
    env = db._env
    with env.read() as txn:
        p = postings.read(txn, env.dbs["postings"], col._prefix, term)
    return [(int(r), int(t), int(d)) for r, t, d in zip(p["row"], p["tf"], p["dl"])]


def test_add_indexes_documents_in_the_batch(db):
    col = _col(db)
    assert col.text_index
    state, expected = text_index_state(db, col)
    assert state == expected
    length = sum(term_counts(DOCS[0]).values())
    assert _postings_of(db, col, "aapl") == [(0, 1, length)]
    assert [r for r, _, _ in _postings_of(db, col, "apple")] == [0, 2]
    assert [r for r, _, _ in _postings_of(db, col, "gpt-4o")] == [1]
    assert state["stats"] == (4, sum(sum(term_counts(d).values()) for d in DOCS if d))


def test_upsert_update_delete_and_vacuum_keep_postings_exact(db):
    col = _col(db)
    col.upsert(ids=[0], vectors=[[0, 0, 0, 1]], documents=["MSFT only now"])  # new row 6
    assert _postings_of(db, col, "aapl") == []
    assert [r for r, _, _ in _postings_of(db, col, "msft")] == [6]
    col.update(ids=[2], documents=["cherry pie"])  # in place: same row 2
    assert [r for r, _, _ in _postings_of(db, col, "cherry")] == [2]
    assert [r for r, _, _ in _postings_of(db, col, "apple")] == []
    col.update(ids=[1], metadatas=[{"year": 2024}])  # document untouched
    assert [r for r, _, _ in _postings_of(db, col, "gpt-4o")] == [1]
    col.update(ids=[3], documents=["now it has words"])  # None -> text
    col.update(ids=[5], documents=[""])  # text -> empty
    assert _postings_of(db, col, "foo_bar") == []
    col.delete(ids=[1])
    col.delete(where_document={"$contains": "cherry"})
    state, expected = text_index_state(db, col)
    assert state == expected
    col.vacuum()  # rows renumbered: postings follow
    state, expected = text_index_state(db, col)
    assert state == expected
    assert [r for r, _, _ in _postings_of(db, col, "msft")] == [3]  # live rows 3, 4, 5, 6


def test_postings_survive_reopen_and_drop_removes_them(db_path):
    with vecdb.open(db_path) as db:
        _col(db)
    with vecdb.open(db_path) as db:
        col = db.get_collection("c")
        state, expected = text_index_state(db, col)
        assert state == expected and state["stats"][0] == 4
        prefix = col._prefix
        db.drop_collection("c")
        env = db._env
        with env.read() as txn:
            assert postings.read(txn, env.dbs["postings"], prefix, "apple").size == 0
            assert postings.TextStats.load(txn, env.dbs["meta"], prefix) == \
                postings.TextStats()


def test_text_index_false_writes_nothing(db):
    col = _col(db, text_index=False)
    assert not col.text_index
    state, _ = text_index_state(db, col)
    assert state == {"postings": {}, "stats": (0, 0)}
    with pytest.raises(vecdb.InvalidArgumentError, match="text_index"):
        db.create_collection("d", dim=4, text_index="yes")
    assert "d" not in db.list_collections()
