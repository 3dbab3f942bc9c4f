"""Every misuse raises a VecDBError subclass naming the argument, and changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb import errors


def _state(db_path):
    """Everything observable about collection "c", read through a fresh handle."""
    with vecdb.open(db_path, readonly=True) as db:
        col = db.get_collection("c")
        recs = col.get(include=("metadata", "document", "vector"))
        return col.count(), [(r.id, r.metadata, r.document, r.vector.tolist()) for r in recs]


@pytest.fixture
def seeded(db_path):
    """A database with collection "c" (dim 3, l2) holding ids "a" and 1."""
    db = vecdb.open(db_path)
    col = db.create_collection("c", dim=3, metric="l2")
    col.add(ids=["a", 1], vectors=[[1, 2, 3], [4, 5, 6]], metadatas=[{"k": 1}, None],
            documents=["A", None])
    yield db, col
    db.close()


V = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
BAD_WRITES = [
    # (method, kwargs, error type, words the message must contain)
    ("add", dict(ids=["x", "y"], vectors=[[1, 2], [3, 4]]), errors.DimensionMismatchError,
     ["vectors", "3", "2"]),
    ("add", dict(ids=["x", "y"], vectors=[[1, 2, np.nan], [0, 0, 0]]), errors.InvalidVectorError,
     ["vectors[0]", "NaN"]),
    ("add", dict(ids=["x", "y"], vectors=[[1, 2, 3], [0, np.inf, 0]]), errors.InvalidVectorError,
     ["vectors[1]"]),
    ("add", dict(ids=["x", "x"], vectors=V), errors.DuplicateIdError, ["ids[1]", "'x'"]),
    ("add", dict(ids=["x", "a"], vectors=V), errors.IdExistsError, ["ids[1]", "'a'", "upsert"]),
    ("add", dict(ids=[], vectors=np.zeros((0, 3))), errors.InvalidArgumentError, ["ids", "empty"]),
    ("add", dict(ids=["x", "y", "z"], vectors=V), errors.InvalidArgumentError, ["vectors", "3 ids"]),
    ("add", dict(ids=["x", "y"], vectors=V, metadatas=[{}]), errors.InvalidArgumentError,
     ["metadatas", "1", "2"]),
    ("add", dict(ids=["x", "y"], vectors=V, documents=["d"]), errors.InvalidArgumentError,
     ["documents"]),
    ("add", dict(ids=["x", "y"], vectors=V, documents=["d", 5]), errors.InvalidArgumentError,
     ["documents[1]"]),
    ("add", dict(ids=["x", "y"], vectors=V, metadatas=[{"o": object()}, {}]),
     errors.InvalidMetadataError, ["metadatas[0]", "'o'", "object"]),
    ("add", dict(ids=["x", "y"], vectors=V, metadatas=[{}, {"d": {"nested": 1}}]),
     errors.InvalidMetadataError, ["metadatas[1]", "dict"]),
    ("add", dict(ids=["x", "y"], vectors=V, metadatas=[{}, {"l": [1, [2]]}]),
     errors.InvalidMetadataError, ["metadatas[1]", "list"]),
    ("add", dict(ids=["x", "y"], vectors=V, metadatas=[{1: "a"}, {}]), errors.InvalidMetadataError,
     ["metadatas[0]", "keys"]),
    ("add", dict(ids=["x", "y"], vectors=V, metadatas=[{"$bad": 1}, {}]),
     errors.InvalidMetadataError, ["$bad"]),
    ("add", dict(ids=["x", "y"], vectors=V, metadatas=[{"f": float("nan")}, {}]),
     errors.InvalidMetadataError, ["finite"]),
    ("add", dict(ids=["x", "y"], vectors=V, metadatas=["notadict", {}]), errors.InvalidMetadataError,
     ["metadatas[0]"]),
    ("add", dict(ids=["x", 2.5], vectors=V), errors.InvalidIdError, ["ids[1]", "float"]),
    ("add", dict(ids=["x", True], vectors=V), errors.InvalidIdError, ["ids[1]", "bool"]),
    ("add", dict(ids=["x", 2**64], vectors=V), errors.InvalidIdError, ["ids[1]", "64-bit"]),
    ("add", dict(ids=["x", "y" * 600], vectors=V), errors.InvalidIdError, ["ids[1]"]),
    ("add", dict(ids="x", vectors=V[:1]), errors.InvalidArgumentError, ["ids", "list"]),
    ("add", dict(ids=["x", "y"], vectors=[["a", "b", "c"], [1, 2, 3]]), errors.InvalidArgumentError,
     ["vectors"]),
    ("add", dict(ids=["x", "y"], vectors=None), errors.InvalidArgumentError, ["vectors"]),
    ("upsert", dict(ids=["x", "y"], vectors=[[1, 2, 3, 4]] * 2), errors.DimensionMismatchError,
     ["vectors"]),
    ("upsert", dict(ids=["a", "a"], vectors=V), errors.DuplicateIdError, ["ids[1]"]),
    ("update", dict(ids=["a", "nope"], metadatas=[{"k": 2}, {"k": 3}]), errors.IdNotFoundError,
     ["ids[1]", "'nope'"]),
    ("update", dict(ids=["a"], vectors=[[1, 2]]), errors.DimensionMismatchError, ["vectors"]),
    ("update", dict(ids=["a", 1], vectors=[[1, 2, 3], [np.nan, 0, 0]]), errors.InvalidVectorError,
     ["vectors[1]"]),
    ("delete", dict(ids=[["nested"]]), errors.InvalidIdError, ["ids[0]"]),
]


@pytest.mark.parametrize("method,kwargs,exc,words", BAD_WRITES,
                         ids=[f"{m}-{e.__name__}-{i}" for i, (m, _, e, _) in enumerate(BAD_WRITES)])
def test_bad_write_raises_and_changes_nothing(seeded, db_path, method, kwargs, exc, words):
    db, col = seeded
    before = _state(db_path)
    with pytest.raises(exc) as info:
        getattr(col, method)(**kwargs)
    assert isinstance(info.value, errors.VecDBError)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert _state(db_path) == before
    db.close()
    assert _state(db_path) == before  # and after a reopen


def test_cosine_zero_vector_rejected(db):
    col = db.create_collection("c", dim=2, metric="cosine")
    with pytest.raises(errors.InvalidVectorError, match=r"vectors\[1\].*zero"):
        col.add(ids=[1, 2], vectors=[[1, 0], [0, 0]])
    with pytest.raises(errors.InvalidVectorError, match="query"):
        col.query([0, 0])
    assert col.count() == 0


BAD_QUERIES = [
    (dict(query=[1, 2], k=1), errors.DimensionMismatchError, "query"),
    (dict(query=[1, 2, np.nan], k=1), errors.InvalidVectorError, "query"),
    (dict(query=[1, 2, 3], k=0), errors.InvalidArgumentError, "k"),
    (dict(query=[1, 2, 3], k=2.5), errors.InvalidArgumentError, "k"),
    (dict(query=[1, 2, 3], k=True), errors.InvalidArgumentError, "k"),
    (dict(query=np.zeros((0, 3)), k=1), errors.InvalidArgumentError, "query"),
    (dict(query=np.zeros((2, 2, 3)), k=1), errors.InvalidArgumentError, "query"),
    (dict(query=[1, 2, 3], include=["embeddings"]), errors.InvalidArgumentError, "vector"),
    (dict(query=[1, 2, 3], n_threads=-1), errors.InvalidArgumentError, "n_threads"),
]


@pytest.mark.parametrize("kwargs,exc,word", BAD_QUERIES)
def test_bad_query(seeded, kwargs, exc, word):
    _, col = seeded
    with pytest.raises(exc, match=word):
        col.query(**kwargs)


def test_bad_get_arguments(seeded):
    _, col = seeded
    with pytest.raises(errors.InvalidArgumentError, match="limit"):
        col.get(limit=-1)
    with pytest.raises(errors.InvalidArgumentError, match="offset"):
        col.get(offset="1")
    with pytest.raises(errors.InvalidArgumentError, match="include"):
        col.get(include=["metadatas"])


def test_collection_errors(db_path):
    with vecdb.open(db_path) as db:
        db.create_collection("c", dim=3)
        with pytest.raises(errors.CollectionExistsError, match="'c'"):
            db.create_collection("c", dim=3)
        with pytest.raises(errors.CollectionNotFoundError, match="'nope'") as info:
            db.get_collection("nope")
        assert isinstance(info.value, KeyError) and str(info.value).startswith("name:")
        with pytest.raises(errors.CollectionNotFoundError):
            db.drop_collection("nope")
        with pytest.raises(errors.InvalidArgumentError, match="dim"):
            db.create_collection("d", dim=0)
        with pytest.raises(errors.InvalidArgumentError, match="metric"):
            db.create_collection("d", dim=3, metric="hamming")
        with pytest.raises(errors.InvalidArgumentError, match="name"):
            db.create_collection("", dim=3)
        with pytest.raises(errors.InvalidArgumentError, match="index"):
            db.create_collection("d", dim=3, index="hnsw")
        with pytest.raises(errors.InvalidArgumentError, match="dim=3"):
            db.get_or_create_collection("c", dim=4)
        assert db.list_collections() == ["c"]


def test_closed_database(db_path):
    db = vecdb.open(db_path)
    col = db.create_collection("c", dim=2)
    col.add(ids=[1], vectors=[[1, 0]])
    db.close()
    db.close()  # idempotent
    for call in (lambda: col.add(ids=[2], vectors=[[0, 1]]), lambda: col.query([1, 0]),
                 lambda: col.get(ids=[1]), col.count, lambda: col.delete([1]),
                 lambda: db.create_collection("d", dim=2), db.list_collections,
                 lambda: db.get_collection("c")):
        with pytest.raises(errors.DatabaseClosedError, match="closed"):
            call()
    with vecdb.open(db_path) as db:
        assert db.get_collection("c").count() == 1


def test_open_errors(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(errors.InvalidArgumentError, match="not a directory"):
        vecdb.open(f)
    with pytest.raises(errors.DatabaseNotFoundError, match="readonly"):
        vecdb.open(tmp_path / "missing", readonly=True)
    assert not (tmp_path / "missing").exists()
    with pytest.raises(errors.InvalidArgumentError, match="durability"):
        vecdb.open(tmp_path / "db", durability="fast")
    with pytest.raises(errors.InvalidArgumentError, match="timeout"):
        vecdb.open(tmp_path / "db", timeout=-1)
    with pytest.raises(errors.InvalidArgumentError, match="path"):
        vecdb.open(42)


def test_readonly_refuses_writes(seeded, db_path):
    db, col = seeded
    before = _state(db_path)
    with vecdb.open(db_path, readonly=True) as ro:
        rcol = ro.get_collection("c")
        for call in (lambda: rcol.add(ids=["z"], vectors=[[1, 1, 1]]),
                     lambda: rcol.upsert(ids=["a"], vectors=[[1, 1, 1]]),
                     lambda: rcol.update(ids=["a"], documents=["x"]),
                     lambda: rcol.delete(["a"]),
                     lambda: ro.create_collection("d", dim=2), lambda: ro.drop_collection("c")):
            with pytest.raises(errors.ReadOnlyError, match="readonly"):
                call()
    assert _state(db_path) == before


def test_error_classes_inherit_builtins():
    assert issubclass(errors.DimensionMismatchError, ValueError)
    assert issubclass(errors.CollectionNotFoundError, KeyError)
    assert issubclass(errors.DatabaseLockedError, TimeoutError)
    assert issubclass(errors.ReadOnlyError, PermissionError)
    assert issubclass(errors.DatabaseNotFoundError, FileNotFoundError)
    for name in errors.__all__:
        assert issubclass(getattr(vecdb, name), vecdb.VecDBError)
