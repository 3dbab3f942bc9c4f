"""Database: open/close, collections catalog, durability modes, same-process handles, CLI."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb import cli


def test_open_creates_directory_and_layout(tmp_path):
    path = tmp_path / "nested" / "my.vdb"
    with vecdb.open(path) as db:
        assert repr(db).endswith("open)")
        col = db.create_collection("docs", dim=4)
        col.add(ids=["a"], vectors=[[1, 2, 3, 4]])
    names = {p.name for p in path.iterdir()}
    assert {"data.mdb", "lock.mdb", "LOCK", "collections"} <= names
    (folder,) = (path / "collections").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["hnsw.graph", "ids.0.i64", "vectors.0.f32"]
    assert db.closed and repr(db).endswith("closed)")


def test_collections_catalog(db):
    a = db.create_collection("b-docs", dim=4, metric="ip")
    b = db.get_or_create_collection("a-docs", dim=8, metric="l2")
    assert db.get_or_create_collection("b-docs", dim=4, metric="ip") is a
    assert db.get_collection("a-docs") is b
    assert db.list_collections() == ["a-docs", "b-docs"]
    assert (a.name, a.dim, a.metric, a.index) == ("b-docs", 4, "ip", vecdb.HNSW())
    db.drop_collection("b-docs")
    assert db.list_collections() == ["a-docs"]


def test_collections_are_independent(db):
    a = db.create_collection("a", dim=2, metric="l2")
    b = db.create_collection("b", dim=2, metric="l2")
    a.add(ids=[1, 2], vectors=[[0, 0], [1, 1]])
    b.add(ids=[1], vectors=[[5, 5]])
    assert a.count() == 2 and b.count() == 1
    assert b.query([0, 0], k=5).ids.tolist() == [1]
    np.testing.assert_array_equal(b.get(ids=[1], include=["vector"])[0].vector, [5, 5])


def test_thousands_of_collections(db_path):
    with vecdb.open(db_path, durability="off") as db:
        for i in range(1200):
            db.create_collection(f"tenant-{i}", dim=2).add(ids=[i], vectors=[[1, i]])
    with vecdb.open(db_path, readonly=True) as db:
        assert len(db.list_collections()) == 1200
        assert db.get_collection("tenant-777").get(ids=[777])[0].id == 777


@pytest.mark.parametrize("durability", ["full", "normal", "off"])
def test_durability_modes_persist_on_close(db_path, durability):
    with vecdb.open(db_path, durability=durability) as db:
        col = db.create_collection("c", dim=3)
        col.add(ids=list(range(50)), vectors=np.random.default_rng(0).random((50, 3)))
        col.flush()
        col.add(ids=[100], vectors=[[1, 1, 1]])
    with vecdb.open(db_path) as db:
        assert db.get_collection("c").count() == 51


def test_readonly_handle_in_same_process_follows_writer(db_path):
    with vecdb.open(db_path) as writer:
        col = writer.create_collection("c", dim=2, metric="l2")
        col.add(ids=[1], vectors=[[0, 0]])
        with vecdb.open(db_path, readonly=True) as reader:
            rcol = reader.get_collection("c")
            assert rcol.count() == 1
            col.add(ids=[2, 3], vectors=[[1, 1], [2, 2]])
            col.delete([1])
            assert rcol.count() == 2
            assert rcol.query([0, 0], k=5).ids.tolist() == [2, 3]
            writer.drop_collection("c")
            with pytest.raises(vecdb.CollectionNotFoundError):
                rcol.query([0, 0])


def test_cli_demo_and_info(tmp_path, capsys):
    path = str(tmp_path / "demo.vdb")
    assert cli.main(["demo", path, "--n", "1500", "--dim", "32"]) == 0
    out = capsys.readouterr().out
    assert "added 1500 vectors" in out and "doc-00042" in out and "batch of 200" in out
    assert cli.main(["demo", path, "--n", "1200", "--dim", "16"]) == 0  # reruns cleanly
    capsys.readouterr()
    assert cli.main(["info", path]) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()  # name, count, deleted, dim, metric
    assert row[:5] == ["demo", "1,200", "0", "16", "cosine"]
    assert cli.main(["info", str(tmp_path / "nope")]) == 1
    assert "no vecdb database" in capsys.readouterr().err
