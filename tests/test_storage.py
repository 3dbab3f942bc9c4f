"""Storage layer: segment files, LMDB map growth, format checks, records, the writer lock."""

from __future__ import annotations

import os
import threading

import lmdb
import numpy as np
import pytest

import vecdb
from vecdb import errors
from vecdb.storage import env as envmod, records, segments
from vecdb.storage.lock import WriterLock


def _segment_files(db_path):
    return sorted((db_path / "collections").glob("*/vectors.*.f32"))


def test_segment_append_views_and_growth(tmp_path):
    store = segments.SegmentStore(str(tmp_path), dim=3, uuid=b"u" * 16, writable=True)
    a = np.arange(3 * 1000, dtype=np.float32).reshape(1000, 3)
    store.append(0, a[:10])
    v_small = store.views(10)
    store.append(10, a[10:])
    store.sync()
    v = store.views(1000)
    np.testing.assert_array_equal(v[0][:1000], a)
    np.testing.assert_array_equal(v_small[0][:10], a[:10])  # old views stay valid
    np.testing.assert_array_equal(store.read([999, 0, 5], 1000), a[[999, 0, 5]])
    size = os.path.getsize(tmp_path / "vectors.0.f32")
    assert size == segments.HEADER_BYTES + 1024 * 12  # grown by doubling from 256 rows
    store.close()


@pytest.mark.parametrize("offset,byte", [(0, b"X"), (9, b"\x07"), (16, b"\x09"), (40, b"\x00")])
def test_corrupt_segment_header_is_detected(db_path, offset, byte):
    with vecdb.open(db_path) as db:
        db.create_collection("c", dim=4).add(ids=[1], vectors=[[1, 2, 3, 4]])
    (path,) = _segment_files(db_path)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(byte)
    with vecdb.open(db_path) as db:
        with pytest.raises(errors.CorruptionError, match="vectors.0.f32"):
            db.get_collection("c")


def test_truncated_segment_is_detected(db_path):
    with vecdb.open(db_path) as db:
        db.create_collection("c", dim=4).add(ids=list(range(10)), vectors=np.ones((10, 4)))
    (path,) = _segment_files(db_path)
    os.truncate(path, segments.HEADER_BYTES + 5 * 16)
    with vecdb.open(db_path) as db:
        with pytest.raises(errors.CorruptionError, match="holds 5 rows"):
            db.get_collection("c")


def test_missing_segment_is_detected(db_path):
    with vecdb.open(db_path) as db:
        db.create_collection("c", dim=4).add(ids=[1], vectors=[[1, 2, 3, 4]])
    (path,) = _segment_files(db_path)
    os.remove(path)
    with vecdb.open(db_path) as db:
        with pytest.raises(errors.CorruptionError, match="missing"):
            db.get_collection("c")


def test_lmdb_map_grows_transparently(db_path, monkeypatch):
    monkeypatch.setattr(envmod, "INITIAL_MAP_SIZE", 1 << 20)
    doc = os.urandom(3000).hex()  # incompressible, ~6 KB per record
    with vecdb.open(db_path) as db:
        col = db.create_collection("c", dim=2, metric="l2")
        for b in range(6):
            col.add(ids=list(range(b * 200, b * 200 + 200)), vectors=np.ones((200, 2)),
                    documents=[doc] * 200)
        assert db._env.env.info()["map_size"] > 4 << 20
        assert col.count() == 1200
    with vecdb.open(db_path, readonly=True) as db:
        col = db.get_collection("c")
        assert col.count() == 1200 and col.get(ids=[1199])[0].document == doc


def test_reserve_lets_writes_go_on_beside_a_long_read(db_path, monkeypatch):
    """A read transaction held open (an export) keeps this process from growing the map;
    Env.reserve beforehand gives the writes their room, so they neither wait nor fail."""
    monkeypatch.setattr(envmod, "INITIAL_MAP_SIZE", 1 << 20)
    doc = os.urandom(3000).hex()
    with vecdb.open(db_path, durability="off") as db:
        col = db.create_collection("c", dim=2, metric="l2")
        env = db._env
        env.reserve(8 << 20)
        size = env.env.info()["map_size"]
        assert size >= 8 << 20
        done = threading.Event()

        def write():
            for b in range(6):  # ~5 MB of records: more than the 1 MB map before reserve
                col.add(ids=list(range(b * 200, b * 200 + 200)), vectors=np.ones((200, 2)),
                        documents=[doc] * 200)
            done.set()

        with env.read() as txn:  # the long read
            worker = threading.Thread(target=write)
            worker.start()
            assert done.wait(60), "a write waited for the long read to end"
            assert txn.get(col._prefix, db=env.dbs["state"]) is not None
        worker.join()
        assert env.env.info()["map_size"] == size and col.count() == 1200
        env.reserve(1 << 20)  # the free room is at least the used size, whatever asked
        info = env.env.info()
        used = (info["last_pgno"] + 1) * env.env.stat()["psize"]
        assert info["map_size"] - used >= used > 2 << 20


def _put_raw(path, table: bytes, key: bytes, value: bytes) -> None:
    """Writes one key straight into a sub-database of the LMDB environment at path."""
    env = lmdb.open(str(path), max_dbs=8)
    with env.begin(write=True, db=env.open_db(table)) as txn:
        txn.put(key, value)
    env.close()


def test_newer_format_is_refused(db_path):
    vecdb.open(db_path).close()
    _put_raw(db_path, b"meta", b"format_version", b"999")
    with pytest.raises(errors.FormatVersionError, match="999"):
        vecdb.open(db_path)


def test_foreign_lmdb_is_refused(tmp_path):
    _put_raw(tmp_path, b"catalog", b"x", b"y")
    with pytest.raises(errors.CorruptionError, match="not a vecdb database"):
        vecdb.open(tmp_path)


@pytest.mark.parametrize("ext_id", ["id", "ünï", "", 0, -2**63, 2**63 - 1])
@pytest.mark.parametrize("meta,doc", [({"a": 1, "l": [1, "x", None]}, "short"),
                                      ({"t": "y" * 5000}, "z" * 5000), (None, None)])
def test_records_roundtrip(ext_id, meta, doc):
    raw = records.encode(ext_id, meta, doc)
    assert records.decode(raw) == (ext_id, meta, doc)
    assert records.decode_id(raw) == ext_id and type(records.decode_id(raw)) is type(ext_id)
    assert (raw[:1] == b"\x01") == (len(doc or "") > records.COMPRESS_ABOVE)


def test_damaged_record_is_corruption():
    with pytest.raises(errors.CorruptionError, match="id kind"):
        records.decode(b"\x00xabc")
    raw = bytearray(records.encode(5, {"a": 1}, "doc"))
    assert records.decode_id(bytes(raw)) == 5
    raw[0] = 0x04
    with pytest.raises(errors.CorruptionError, match="flags"):
        records.decode(bytes(raw))


def test_writer_lock_is_exclusive_even_in_one_process(tmp_path):
    lock = WriterLock.acquire(str(tmp_path), timeout=0)
    with pytest.raises(errors.DatabaseLockedError, match="locked"):
        WriterLock.acquire(str(tmp_path), timeout=0.05)
    lock.release()
    WriterLock.acquire(str(tmp_path), timeout=0).release()


def test_drop_collection_removes_keys_and_files(db_path):
    with vecdb.open(db_path) as db:
        a = db.create_collection("a", dim=2)
        b = db.create_collection("b", dim=2)
        a.add(ids=[1, 2], vectors=[[1, 0], [0, 1]], documents=["x", "y"])
        b.add(ids=[1], vectors=[[1, 1]])
        folder = a._rows.store.directory
        db.drop_collection("a")
        with pytest.raises(errors.CollectionNotFoundError):
            a.query([1, 0])
        assert db.list_collections() == ["b"] and b.count() == 1
        with db._env.read() as txn:
            for table in ("rows", "ids", "state"):
                assert txn.stat(db._env.dbs[table])["entries"] == 1, table
        c = db.create_collection("a", dim=3)  # the name can be reused, empty
        assert c.count() == 0 and c.dim == 3
    assert len(_segment_files(db_path)) == 1
    assert not os.path.exists(folder)
