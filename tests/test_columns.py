"""The filter columns (vecdb/storage/columns.py), their checkpoint file (storage/colfile.py)
and their upkeep by a collection (index/filter_columns.py): layouts, round trips, damage,
catch-up from LMDB, vacuum carry-over."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

import vecdb
from vecdb.errors import CorruptionError, FormatVersionError
from vecdb.query.evaluate import evaluate
from vecdb.query.filters import parse
from vecdb.storage import colfile
from vecdb.storage.columns import DENSE_SHARE, ColumnStore

from conftest import matches


def _store(metas, docs=None):
    s = ColumnStore()
    n = len(metas)
    s.set_rows(list(range(n)), metas, docs or [None] * n, n)
    s.advance(n, 0)
    return s


def _rows(store, where=None, where_document=None):
    return np.flatnonzero(evaluate(parse(where, where_document), store)).tolist()


def _expected(metas, docs, where=None, where_document=None):
    return [i for i, (m, d) in enumerate(zip(metas, docs))
            if matches(m, d, where, where_document)]


FILTERS = [
    ({"a": {"$gte": 3}}, None), ({"s": {"$in": ["x", "z"]}}, None), ({"l": {"$contains": 2}}, None),
    ({"rare": {"$exists": True}}, None), ({"$not": {"rare": 7}}, None),
    ({"a": {"$ne": 2}}, None), (None, {"$contains": "cat"}), (None, {"$not_contains": "dog"}),
]


def _sample(n, seed=0):
    rng = np.random.default_rng(seed)
    metas, docs = [], []
    for i in range(n):
        m = {"a": int(rng.integers(0, 6)) if i % 5 else float(rng.integers(0, 6)),
             "s": ["x", "y", "z"][i % 3], "l": [int(v) for v in rng.integers(0, 4, 2)]}
        if i % 37 == 0:
            m["rare"] = 7 if i % 2 else "seven"
        metas.append(m)
        docs.append(None if i % 4 == 0 else ["the cat", "a dog", "cat and dog"][i % 3])
    return metas, docs


def test_sparse_field_turns_dense_as_it_fills():
    metas = [{"f": 1} if i == 0 else {} for i in range(100)]
    s = _store(metas)
    assert not s.field("f").dense
    more = [{"f": i} for i in range(100, 100 + 100 // DENSE_SHARE + 5)]
    rows = list(range(100, 100 + len(more)))
    s.set_rows(rows, more, [None] * len(rows), rows[-1] + 1)
    s.advance(rows[-1] + 1, 0)
    assert s.field("f").dense
    assert _rows(s, {"f": {"$gte": 0}}) == [0] + rows
    assert int(s.field("f").counts.sum()) == 1 + len(rows)


def test_replacing_a_row_clears_fields_it_no_longer_has():
    s = _store([{"a": 1, "b": "x"}, {"a": 2}])
    s.set_rows([0], [{"a": 5}], ["new text"], 2)
    assert _rows(s, {"b": {"$exists": True}}) == []
    assert _rows(s, {"a": 5}) == [0]
    assert _rows(s, where_document={"$contains": "new"}) == [0]
    assert s.field("b").present() == 0


@pytest.mark.parametrize("where,where_document", FILTERS)
def test_checkpoint_round_trip_keeps_every_answer(tmp_path, where, where_document):
    metas, docs = _sample(500)
    s = _store(metas, docs)
    colfile.save(s, str(tmp_path))
    loaded = colfile.load(str(tmp_path))
    assert (loaded.watermark, loaded.edit_seq) == (500, 0)
    expected = _expected(metas, docs, where, where_document)
    assert _rows(loaded, where, where_document) == expected
    # a loaded store takes new rows (its arrays are copy-on-write views of the file)
    loaded.set_rows([500], [{"a": 5, "l": [2]}], ["cat"], 501)
    loaded.advance(501, 0)
    expected = _expected(metas + [{"a": 5, "l": [2]}], docs + ["cat"], where, where_document)
    assert _rows(loaded, where, where_document) == expected
    assert colfile.load(str(tmp_path)).watermark == 500  # the file did not change


def test_renumbered_keeps_the_live_rows_only():
    metas, docs = _sample(300)
    s = _store(metas, docs)
    live = np.array([i for i in range(300) if i % 3], dtype=np.int64)
    r = s.renumbered(live)
    for where, wd in FILTERS:
        kept = [metas[i] for i in live], [docs[i] for i in live]
        assert _rows(r, where, wd) == _expected(*kept, where, wd), (where, wd)


def test_missing_checkpoint_gives_an_empty_store(tmp_path):
    assert colfile.load(str(tmp_path)).watermark == 0


@pytest.mark.parametrize("damage", ["magic", "header", "array", "truncate", "version"])
def test_damaged_checkpoint_is_refused(tmp_path, damage):
    metas, docs = _sample(200)
    colfile.save(_store(metas, docs), str(tmp_path))
    path = os.path.join(tmp_path, colfile.FILE_NAME)
    raw = bytearray(open(path, "rb").read())
    if damage == "magic":
        raw[0] ^= 0xFF
    elif damage == "header":
        raw[17] ^= 0x01  # watermark
    elif damage == "array":
        raw[colfile.HEADER_SIZE + 3] ^= 0x01
    elif damage == "truncate":
        raw = raw[: len(raw) - 10]
    else:
        raw[8] = 99  # version, with a matching header checksum
        import struct
        import zlib
        raw[60:64] = struct.pack("<I", zlib.crc32(bytes(raw[:60])))
    open(path, "wb").write(bytes(raw))
    expected = FormatVersionError if damage == "version" else CorruptionError
    with pytest.raises(expected):
        store = colfile.load(str(tmp_path))
        store.field("a")  # arrays are checked when their field is first used


def _collection_dir(db_path):
    base = os.path.join(db_path, "collections")
    return os.path.join(base, sorted(os.listdir(base))[0])


def test_collection_rebuilds_damaged_columns_with_a_warning(db_path):
    metas, docs = _sample(400)
    X = np.random.default_rng(1).standard_normal((400, 8)).astype(np.float32)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        col.add(ids=list(range(400)), vectors=X, metadatas=metas, documents=docs)
        assert col.count(where={"a": {"$gte": 3}}) == len(_expected(metas, docs, {"a": {"$gte": 3}}))
    path = os.path.join(_collection_dir(db_path), colfile.FILE_NAME)
    assert os.path.exists(path)  # written at close
    raw = bytearray(open(path, "rb").read())
    raw[colfile.HEADER_SIZE + 1] ^= 0x40
    open(path, "wb").write(bytes(raw))
    with vecdb.open(db_path) as db:
        col = db.get_collection("c")
        with pytest.warns(RuntimeWarning, match="filter columns"):
            n = col.count(where={"a": {"$gte": 3}})
        assert n == len(_expected(metas, docs, {"a": {"$gte": 3}}))
        assert col.stats()["filter_columns"]["rebuilds"] == 1


def test_columns_catch_up_after_close_without_checkpoint(db_path):
    """Rows and edits written after the last checkpoint are replayed from LMDB."""
    X = np.random.default_rng(2).standard_normal((50, 4)).astype(np.float32)
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=4, metric="l2")
        col.add(ids=list(range(40)), vectors=X[:40], metadatas=[{"v": i} for i in range(40)])
        assert col.count(where={"v": {"$lt": 10}}) == 10  # loads the columns: checkpointed
    with vecdb.open(db_path) as db:  # changes made without any filter use
        col = db.get_collection("c")
        col.add(ids=list(range(40, 50)), vectors=X[40:], metadatas=[{"v": 0}] * 10)
        col.update(ids=[1, 2], metadatas=[{"v": 100}, {"v": 100}])
        col.delete(ids=[3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stale checkpoint is caught up, not rebuilt
        with vecdb.open(db_path) as db:
            col = db.get_collection("c")
            assert col.count(where={"v": {"$lt": 10}}) == 10 - 3 + 10
            assert sorted(r.id for r in col.get(where={"v": 100})) == [1, 2]


def test_vacuum_carries_the_columns_over(db_path):
    X = np.random.default_rng(3).standard_normal((300, 4)).astype(np.float32)
    with vecdb.open(db_path, auto_vacuum=None) as db:
        col = db.create_collection("c", dim=4, metric="l2")
        col.add(ids=list(range(300)), vectors=X,
                metadatas=[{"v": i % 10, "t": [i % 3]} for i in range(300)],
                documents=[f"doc {i}" for i in range(300)])
        col.update(ids=[0], metadatas=[{"v": 99}])
        assert col.count(where={"v": 99}) == 1
        col.delete(where={"v": {"$gte": 5, "$lt": 99}})
        col.vacuum()
        assert col.stats()["filter_columns"]["checkpoint_rows"] == 150
        assert col.count(where={"v": 99}) == 1
        assert col.count(where={"t": {"$contains": 0}}) == 50
        assert col.count(where_document={"$contains": "doc 1"}) == len(
            [i for i in range(300) if i % 10 < 5 and "doc 1" in f"doc {i}"])
        replayed = col.stats()["filter_columns"]
        assert replayed["rebuilds"] == 0


def test_text_search_of_a_loaded_checkpoint_sees_only_document_bytes(tmp_path):
    """A loaded chunk is a range of the mapped file: the search must not start before it
    (where column arrays and other bytes live) nor match a replaced piece."""
    s = _store([{"k": "aB"}, {}, {}], ["x", "aB", None])  # "aB" also in a field's strings
    s.set_rows([1], [{}], ["zz"], 3)  # row 1's "aB" is replaced; "zz" is the last piece
    colfile.save(s, str(tmp_path))
    loaded = colfile.load(str(tmp_path))
    assert _rows(loaded, where_document={"$contains": "aB"}) == []
    assert _rows(loaded, where_document={"$contains": "z"}) == [1]
    assert _rows(loaded, where_document={"$not_contains": "x"}) == [1, 2]
