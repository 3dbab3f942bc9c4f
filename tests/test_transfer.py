"""Import and export (vecdb/io/transfer.py): col.export, col.add_from, db.import_.

Round trips for every format (JSONL plain / gzip / zstandard, Parquet, .npy) through
db.import_ and col.add_from compare everything get() returns (id and its type, metadata with
its value types, document, vector bytes) and query results; then filters, upsert, streaming
in batches, failures (which name the argument and leave nothing behind), and an export
taken while other threads write (one committed state).

Local helpers: ``rich_collection`` (every kind of id, metadata value and document) and
``state`` (a strict, type-aware picture of a collection).
"""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import Child, random_vectors

import vecdb
from vecdb.errors import (
    DimensionMismatchError,
    FilterError,
    IdExistsError,
    InvalidArgumentError,
    NotFoundError,
    ReadOnlyError,
)

DIM = 12
TEXT_FORMATS = ["jsonl", "jsonl.gz", "jsonl.zst", "ndjson"]
FORMATS = TEXT_FORMATS + ["parquet"]

SPECIAL_IDS = [0, "0", 2**63 - 1, -(2**63), "ünïcödé 😀 中文", "with \"quotes\"\n", -1]
METADATAS = [
    {"s": "ünï", "i": 2**63 - 1, "neg": -(2**63), "f": 0.1, "big": 1e300, "tiny": 5e-324,
     "neg0": -0.0, "b": True, "n": None, "l": [1, 2.5, "x", None, False], "中文键": "值 😀"},
    {},
    None,
    {"l": [], "one_int": 1, "one_float": 1.0, "t": False},
    {"nested": [0.1, 0.2, 0.30000000000000004], "e": -1e-300, "emoji 🎉": ["🎉", "ü"]},
]
DOCUMENTS = ["plain text", "", None,
             "emoji 😀 CJK 中文 \n newline \"quotes\" \\ backslash \u2028 sep\u2029 \t tab \r",
             "long " * 400]  # > 1 KiB: a compressed record


def canon(value):
    """value with the type of every scalar made explicit (1, 1.0, True differ; -0.0 and 0.0
    differ; dict key order kept)."""
    if isinstance(value, dict):
        return ("dict", [(k, canon(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [canon(v) for v in value])
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


def state(col):
    """Every item of col, in insertion order, exactly."""
    return [(canon(r.id), canon(r.metadata), canon(r.document), r.vector.tobytes())
            for r in col.get(include=("metadata", "document", "vector"))]


def rich_collection(db, name="src", metric="l2", n=300, index=None, seed=0):
    """A collection holding every kind of id (int, str, extreme, look-alike "0" vs 0),
    metadata value and document, plus a few deleted and replaced items."""
    col = db.create_collection(name, dim=DIM, metric=metric, index=index or vecdb.Flat())
    ids = SPECIAL_IDS + [f"d{i}" if i % 2 else i * 7919 - 2**40 for i in range(n)]
    X = random_vectors(len(ids), DIM, seed=seed)
    col.add(ids=ids, vectors=X,
            metadatas=[METADATAS[i % len(METADATAS)] for i in range(len(ids))],
            documents=[DOCUMENTS[i % len(DOCUMENTS)] for i in range(len(ids))])
    col.delete(ids=ids[10:20])
    col.upsert(ids=ids[30:35], vectors=X[:5], metadatas=[{"replaced": True}] * 5,
               documents=["new"] * 5)
    return col


def path_for(tmp_path, fmt, stem="items"):
    return str(tmp_path / f"{stem}.{fmt}")


def assert_same_search(a, b, metric):
    Q = random_vectors(5, DIM, seed=99)
    for ra, rb in zip(a.query(Q, k=10), b.query(Q, k=10)):
        assert ra.ids.tolist() == rb.ids.tolist()
        np.testing.assert_array_equal(ra.distances, rb.distances)


# -- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_db_import(db, tmp_path, fmt, metric):
    src = rich_collection(db, metric=metric)
    path = path_for(tmp_path, fmt)
    assert src.export(path) == src.count()
    # Parquet keeps the collection's settings; JSONL needs them as arguments
    extra = {} if fmt == "parquet" else {"metric": metric, "index": vecdb.Flat()}
    dst = db.import_("dst", path, **extra)
    assert (dst.dim, dst.metric, dst.index) == (DIM, metric, vecdb.Flat())
    assert state(dst) == state(src)  # cosine: the stored unit rows come back bit for bit
    assert_same_search(src, dst, metric)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_add_from_and_export_again_is_identical(db, tmp_path, fmt):
    src = rich_collection(db, metric="ip")
    first, second = path_for(tmp_path, fmt, "first"), path_for(tmp_path, fmt, "second")
    src.export(first, batch_size=37)
    dst = db.create_collection("dst", dim=DIM, metric="ip", index=vecdb.Flat())
    assert dst.add_from(first, batch_size=50) == src.count()
    assert state(dst) == state(src)
    assert_same_search(src, dst, "ip")
    dst.export(second)
    if fmt in ("jsonl", "ndjson"):  # text: the very same bytes
        with open(first, "rb") as f1, open(second, "rb") as f2:
            assert f1.read() == f2.read()


def test_parquet_keeps_collection_settings_and_id_types(db, tmp_path):
    col = db.create_collection("hnsw", dim=16, metric="ip", index=vecdb.HNSW(m=8, ef_search=40),
                               quantization=vecdb.SQ8(rescore=3),
                               text_index=vecdb.BM25(k1=1.5, stopwords="english"))
    col.add(ids=[5, 6], vectors=random_vectors(2, 16))
    col.export(tmp_path / "ints.parquet")
    schema = pq.read_schema(tmp_path / "ints.parquet")
    assert str(schema.field("id").type) == "int64"
    assert str(schema.field("vector").type).startswith("fixed_size_list<")
    config = json.loads(schema.metadata[b"vecdb"])
    assert config["metric"] == "ip" and config["count"] == 2 and config["version"] == 1
    copy = db.import_("copy", tmp_path / "ints.parquet")
    assert (copy.metric, copy.index, copy.quantization, copy.text_index) == \
        ("ip", vecdb.HNSW(m=8, ef_search=40), vecdb.SQ8(rescore=3),
         vecdb.BM25(k1=1.5, stopwords="english"))
    # arguments win over the stored settings
    other = db.import_("other", tmp_path / "ints.parquet", metric="l2", index=vecdb.Flat(),
                       text_index=False)
    assert (other.metric, other.index, other.quantization, other.text_index) == \
        ("l2", vecdb.Flat(), None, None)
    strs = db.create_collection("strs", dim=4)
    strs.add(ids=["a", "b"], vectors=np.eye(4)[:2])
    strs.export(tmp_path / "strs.parquet")
    assert str(pq.read_schema(tmp_path / "strs.parquet").field("id").type) == "string"


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_npy_round_trip_vectors_bit_exact(db, tmp_path, metric):
    src = rich_collection(db, metric=metric)
    path = tmp_path / "v.npy"
    assert src.export(path) == src.count()
    stored = np.stack([r.vector for r in src.get(include=("vector",))])
    loaded = np.load(path)
    assert loaded.dtype == np.float32 and loaded.tobytes() == stored.tobytes()
    dst = db.import_("dst", path, metric=metric)  # ids 0..n-1
    got = dst.get(include=("vector",))
    assert [r.id for r in got] == list(range(len(stored)))
    assert np.stack([r.vector for r in got]).tobytes() == stored.tobytes()
    named = db.create_collection("named", dim=DIM, metric=metric)
    names = [f"v{i}" for i in range(len(stored))]
    assert named.add_from(path, ids=names, batch_size=64) == len(stored)
    assert named.get(ids=["v3"], include=("vector",))[0].vector.tobytes() == stored[3].tobytes()


@pytest.mark.parametrize("fmt", FORMATS + ["npy"])
def test_empty_collection_round_trip(db, tmp_path, fmt):
    src = db.create_collection("empty", dim=DIM, metric="l2")
    path = path_for(tmp_path, fmt)
    assert src.export(path) == 0
    if fmt in TEXT_FORMATS:  # no line to take the dimension from
        with pytest.raises(InvalidArgumentError, match="dim"):
            db.import_("copy", path)
        assert "copy" not in db.list_collections()
    dst = db.import_("copy", path, dim=DIM, metric="l2")
    assert dst.count() == 0 and dst.dim == DIM


# -- filters, modes, streaming -------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "npy"])
def test_filtered_export(db, tmp_path, fmt):
    src = rich_collection(db)
    where, where_document = {"b": True}, {"$contains": "emoji"}
    for kwargs in ({"where": where}, {"where_document": where_document},
                   {"where": {"one_int": {"$exists": True}}, "where_document": {"$contains": " "}}):
        want = [r.id for r in src.get(**kwargs, limit=None)]
        assert want  # the filter matches something and not everything
        assert len(want) < src.count()
        path = path_for(tmp_path, fmt)
        assert src.export(path, batch_size=7, **kwargs) == len(want)
        dst = db.import_("f", path, metric="l2")
        got = [r.id for r in dst.get()]
        if fmt == "npy":
            vectors = [r.vector.tobytes() for r in src.get(**kwargs, include=("vector",))]
            assert [r.vector.tobytes() for r in dst.get(include=("vector",))] == vectors
        else:
            assert got == want
        db.drop_collection("f")


def test_upsert_mode_replaces_and_add_mode_refuses(db, tmp_path):
    col = db.create_collection("c", dim=4, metric="l2")
    col.add(ids=[1, 2, 3], vectors=np.ones((3, 4)), metadatas=[{"v": "old"}] * 3)
    path = tmp_path / "new.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"id": i, "vector": [i, 0, 0, 0], "metadata": {"v": "new"}})
                     + "\n" for i in (2, 3, 4))
    with pytest.raises(IdExistsError, match=r"line 1, id: id 2 already exists") as e:
        col.add_from(path)
    assert "nothing was written" in str(e.value)
    assert col.count() == 3 and col.get(ids=[4]) == []
    assert col.add_from(path, mode="upsert") == 3
    got = {r.id: (r.metadata["v"], r.vector.tolist())
           for r in col.get(include=("metadata", "vector"))}
    assert got == {1: ("old", [1, 1, 1, 1]), 2: ("new", [2, 0, 0, 0]),
                   3: ("new", [3, 0, 0, 0]), 4: ("new", [4, 0, 0, 0])}


@pytest.mark.parametrize("fmt,total", [("jsonl", None), ("parquet", 1000), ("npy", 1000)])
def test_streams_in_batches_with_progress(db, tmp_path, fmt, total):
    src = db.create_collection("src", dim=8, metric="l2")
    src.add(ids=list(range(1000)), vectors=random_vectors(1000, 8))
    seen = []
    path = path_for(tmp_path, fmt)
    assert src.export(path, batch_size=128, progress=lambda d, t: seen.append((d, t))) == 1000
    assert seen == [(min(1000, 128 * (i + 1)), 1000) for i in range(8)]
    seen.clear()
    dst = db.create_collection("dst", dim=8, metric="l2")
    assert dst.add_from(path, batch_size=128, progress=lambda d, t: seen.append((d, t))) == 1000
    assert len(seen) == 8 and [t for _, t in seen] == [total] * 8
    assert [d for d, _ in seen] == [min(1000, 128 * (i + 1)) for i in range(8)]
    assert dst.count() == 1000


def test_bad_line_stops_import_naming_it(db, tmp_path):
    path = tmp_path / "bad.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n")  # line 1: blank, skipped but counted
        f.writelines(json.dumps({"id": i, "vector": [1.0, float(i)]}) + "\n" for i in range(250))
        f.write('{"id": 250, "vector": [1.0, }\n')  # line 252
        f.write(json.dumps({"id": 251, "vector": [1.0, 2.0]}) + "\n")
    col = db.create_collection("c", dim=2, metric="l2")
    with pytest.raises(InvalidArgumentError, match=r"bad\.jsonl', line 252: not valid JSON") as e:
        col.add_from(path, batch_size=100)
    assert "200 items before it were written" in str(e.value)
    assert col.count() == 200  # two whole batches; the third held the bad line
    with pytest.raises(InvalidArgumentError, match="line 252") as e:
        db.import_("fresh", path, metric="l2", batch_size=100)
    assert "was not created" in str(e.value)
    assert "fresh" not in db.list_collections()  # a created collection is dropped again


@pytest.mark.parametrize("bad,field", [
    ({"id": 1.5, "vector": [1, 2]}, "id"),
    ({"id": True, "vector": [1, 2]}, "id"),
    ({"id": 2**63, "vector": [1, 2]}, "id"),
    ({"vector": [1, 2]}, "id"),
    ({"id": 1}, "vector"),
    ({"id": 1, "vector": [1, "2"]}, "vector"),
    ({"id": 1, "vector": [1, 2, 3]}, "vector"),
    ({"id": 1, "vector": [1, 2], "metadata": [1]}, "metadata"),
    ({"id": 1, "vector": [1, 2], "metadata": {"d": {"x": 1}}}, "metadata"),
    ({"id": 1, "vector": [1, 2], "document": 5}, "document"),
    ({"id": 1, "vector": [1e39, 2]}, "vector"),  # beyond float32
    ({"id": 1, "vector": [0, 0]}, "vector"),     # no direction under cosine
    ({"id": 1, "vector": [1, 2], "x": 1, "metadata": {"x": 2}}, "x"),
    ([1, 2], "object"),
])
def test_bad_item_names_line_and_field(db, tmp_path, bad, field):
    path = tmp_path / "one.jsonl"
    good = json.dumps({"id": 0, "vector": [1, 1]})
    path.write_text(f"{good}\n{json.dumps(bad)}\n", encoding="utf-8")
    col = db.create_collection("c", dim=2, metric="cosine")
    with pytest.raises(InvalidArgumentError) as e:
        col.add_from(path)
    assert "line 2" in str(e.value) and field in str(e.value) and "one.jsonl" in str(e.value)
    assert col.count() == 0  # one batch: all or nothing
    with pytest.raises(InvalidArgumentError):
        db.import_("fresh", path)
    assert "fresh" not in db.list_collections()


def test_bad_arguments_change_nothing(db, tmp_path):
    col = db.create_collection("c", dim=4, metric="l2")
    col.add(ids=[1], vectors=[[1, 2, 3, 4]])
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": 9, "vector": [1, 2, 3, 4]}) + "\n")
    npy = tmp_path / "v.npy"
    np.save(npy, np.ones((3, 4), np.float32))
    other = tmp_path / "dim3.jsonl"
    other.write_text(json.dumps({"id": 9, "vector": [1, 2, 3]}) + "\n")
    cases = [
        ({"path": tmp_path / "x.csv"}, InvalidArgumentError, "format"),
        ({"path": good, "format": "csv"}, InvalidArgumentError, "format: expected one of"),
        ({"path": tmp_path / "missing.jsonl"}, NotFoundError, "missing.jsonl"),
        ({"path": tmp_path}, InvalidArgumentError, "path"),
        ({"path": 42}, InvalidArgumentError, "path: expected a file path"),
        ({"path": good, "mode": "x"}, InvalidArgumentError, "mode: expected one of"),
        ({"path": good, "batch_size": 0}, InvalidArgumentError, "batch_size: expected an int"),
        ({"path": good, "progress": "yes"}, InvalidArgumentError, "progress"),
        ({"path": good, "ids": [1]}, InvalidArgumentError, "ids: only for .npy"),
        ({"path": npy, "ids": [1, 2]}, InvalidArgumentError, "ids: got 2 ids for the 3"),
        ({"path": npy, "ids": [1, 1, 2]}, InvalidArgumentError, r"ids\[1\]: duplicate"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            col.add_from(**kwargs)
        with pytest.raises(error, match=message):
            db.import_("fresh", **kwargs)
        assert col.count() == 1 and db.list_collections() == ["c"]
    with pytest.raises(DimensionMismatchError, match="dimension 3; collection 'c' has "
                                                     "dimension 4"):
        col.add_from(other)
    with pytest.raises(DimensionMismatchError, match="dim: 5 was given"):
        db.import_("fresh", good, dim=5)
    with pytest.raises(DimensionMismatchError, match="dimension 4"):
        db.import_("c", other)  # the existing collection's dim
    with pytest.raises(InvalidArgumentError, match="metric: collection 'c' exists"):
        db.import_("c", good, metric="ip")
    with pytest.raises(InvalidArgumentError, match="metric"):
        db.import_("fresh", good, metric="hamming")
    assert col.count() == 1 and db.list_collections() == ["c"]
    db.import_("c", good, metric="l2")  # an existing collection that matches
    assert col.count() == 2


def test_export_failures_leave_no_file(db, tmp_path):
    col = rich_collection(db)
    path = tmp_path / "out.parquet"
    path.write_bytes(b"old content")
    for kwargs, message in [({"format": "csv"}, "format"), ({"batch_size": 0}, "batch_size"),
                            ({"where": {"x": {"$bad": 1}}}, "bad"), ({"progress": 3}, "progress")]:
        with pytest.raises((InvalidArgumentError, FilterError), match=message):
            col.export(path, **kwargs)
    with pytest.raises(InvalidArgumentError, match="format"):
        col.export(tmp_path / "out.txt")
    with pytest.raises(NotFoundError, match="does not exist"):
        col.export(tmp_path / "no" / "such" / "dir.jsonl")

    def interrupt(done, total):
        if done > 100:
            raise KeyboardInterrupt

    for target in (path, tmp_path / "new.jsonl"):
        with pytest.raises(KeyboardInterrupt):
            col.export(target, batch_size=64, progress=interrupt)
    assert path.read_bytes() == b"old content"  # untouched
    assert sorted(os.listdir(tmp_path)) == ["out.parquet", "test.vdb"]  # no partial files
    assert col.export(path) == col.count()  # and a later export replaces it whole
    assert pq.ParquetFile(path).metadata.num_rows == col.count()


def test_read_only_database_exports_but_does_not_import(db_path, tmp_path):
    with vecdb.open(db_path) as db:
        rich_collection(db)
        want = state(db.get_collection("src"))
    with vecdb.open(db_path, readonly=True) as ro:
        col = ro.get_collection("src")
        assert col.export(tmp_path / "ro.jsonl") == len(want)
        assert col.export(tmp_path / "ro.npy", where={"b": True}) == col.count(where={"b": True})
        with pytest.raises(ReadOnlyError):
            col.add_from(tmp_path / "ro.jsonl", mode="upsert")
        with pytest.raises(ReadOnlyError):
            ro.import_("copy", tmp_path / "ro.jsonl")
    with vecdb.open(db_path) as db:
        assert state(db.import_("copy", tmp_path / "ro.jsonl", metric="l2")) == want


# -- snapshots -----------------------------------------------------------------------------

def test_export_is_unaffected_by_writes_and_vacuum_during_it(db, tmp_path):
    col = rich_collection(db)
    before = state(col)
    ids = [r.id for r in col.get()]

    def meddle(done, total):
        if done == 32:  # after the first batch: delete, replace and vacuum in another thread
            def work():
                col.delete(ids=ids[:100])
                col.upsert(ids=ids[100:110], vectors=np.zeros((10, DIM)) + 1)
                col.vacuum()
            worker = threading.Thread(target=work)
            worker.start()
            worker.join(timeout=60)
            assert not worker.is_alive() and col.count() == len(ids) - 100

    path = tmp_path / "snap.jsonl"
    assert col.export(path, batch_size=32, progress=meddle) == len(before)
    copy = db.import_("copy", path, metric="l2", index=vecdb.Flat())
    assert state(copy) == before
    assert col.stats()["generation"] == 1  # the vacuum did happen under the export


def test_export_during_writes_sees_one_committed_state(tmp_path):
    """A writer thread cycles upsert(S, gen g) -> add(20 new, gen g) -> delete(5 old); every
    export must show S in one generation g and the adds/deletes of a state in that cycle."""
    db = vecdb.open(tmp_path / "db", durability="off")
    col = db.create_collection("c", dim=8, metric="l2", index=vecdb.Flat())
    X = random_vectors(2000, 8)
    col.add(ids=list(range(600)), vectors=X[:600],
            metadatas=[{"gen": 0, "grp": "s" if i < 100 else "old"} for i in range(600)])
    stop, ops, errors = threading.Event(), [0], []

    def writer():
        try:
            g, new = 0, 10_000
            while not stop.is_set() and g < 90:
                g += 1
                col.upsert(ids=list(range(100)), vectors=X[g:g + 100],
                           metadatas=[{"gen": g, "grp": "s"}] * 100)
                col.add(ids=list(range(new, new + 20)), vectors=X[:20],
                        metadatas=[{"gen": g, "grp": "new"}] * 20)
                new += 20
                col.delete(ids=list(range(100 + 5 * (g - 1), 100 + 5 * g)))
                ops[0] += 1
        except BaseException as e:  # noqa: BLE001 - re-raised on the test's thread
            errors.append(e)

    thread = threading.Thread(target=writer)
    thread.start()
    overlapped = 0
    try:
        for attempt in range(6):
            start = ops[0]
            path = tmp_path / f"snap{attempt}.jsonl"
            n = col.export(path, batch_size=16, progress=lambda d, t: time.sleep(0.001))
            overlapped += ops[0] > start
            rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
            ids = [r["id"] for r in rows]
            assert len(rows) == n and len(set(ids)) == n
            s_gens = {r["metadata"]["gen"] for r in rows if r["metadata"]["grp"] == "s"}
            assert sum(r["metadata"]["grp"] == "s" for r in rows) == 100 and len(s_gens) == 1
            g = s_gens.pop()
            added = sum(r["metadata"]["grp"] == "new" for r in rows)
            deleted = 500 - sum(r["metadata"]["grp"] == "old" for r in rows)
            assert (added, deleted) in {(20 * (g - 1), 5 * (g - 1)), (20 * g, 5 * (g - 1)),
                                        (20 * g, 5 * g)}
            sel = col.export(tmp_path / "s.jsonl", where={"grp": "s"}, batch_size=8)
            gens = {json.loads(line)["metadata"]["gen"]
                    for line in (tmp_path / "s.jsonl").read_text("utf-8").splitlines()}
            assert sel == 100 and len(gens) == 1
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors
    assert overlapped  # at least one export ran while the writer committed
    col.export(tmp_path / "final.jsonl")
    assert state(db.import_("final", tmp_path / "final.jsonl", metric="l2",
                            index=vecdb.Flat())) == state(col)
    db.close()


WRITER = """
import os, sys, time, numpy as np, vecdb
db = vecdb.open(sys.argv[1], durability="off")
col = db.get_collection("c")
X = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
g, deadline = 0, time.monotonic() + 20
print("ready", flush=True)
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline and g < 400:
    time.sleep(0.002)
    g += 1
    col.upsert(ids=list(range(50)), vectors=X, metadatas=[{"gen": g, "grp": "s"}] * 50)
    col.add(ids=list(range(1000 * g, 1000 * g + 10)), vectors=X[:10],
            metadatas=[{"gen": g, "grp": "new"}] * 10)
db.close()
print("done", g, flush=True)
"""


def test_read_only_export_while_another_process_writes(db_path, tmp_path):
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=4, metric="l2", index=vecdb.Flat())
        col.add(ids=list(range(50)), vectors=random_vectors(50, 4),
                metadatas=[{"gen": 0, "grp": "s"}] * 50)
    stop = tmp_path / "stop"
    child = Child(WRITER, db_path, stop)
    try:
        assert child.line() == "ready"
        seen = set()
        with vecdb.open(db_path, readonly=True) as ro:
            col = ro.get_collection("c")
            for attempt in range(8):
                path = tmp_path / f"ro{attempt}.jsonl"
                n = col.export(path, batch_size=8)
                rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
                gens = {r["metadata"]["gen"] for r in rows if r["metadata"]["grp"] == "s"}
                assert len(rows) == n and len(gens) == 1  # S as one upsert left it
                g = gens.pop()
                added = sum(r["metadata"]["grp"] == "new" for r in rows)
                assert added in (10 * (g - 1), 10 * g) and n == 50 + added
                seen.add(g)
                time.sleep(0.01)  # let the writer move on
    finally:
        stop.write_text("stop")
        assert child.line().startswith("done")
        assert child.close()[0] == 0
    assert len(seen) > 1  # the exports saw the writer progress
