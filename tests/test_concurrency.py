"""Concurrency (DESIGN.md §4): one writer per directory across processes and within one,
read-only handles in other processes that follow commits without reopening, queries from many
threads during writes, and close() while threads still query.

Everything here is real: LMDB environments in tmp_path, python child processes talking over
pipes (every wait bounded), threads racing on one Database.
"""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

import vecdb
from conftest import Child
from vecdb.errors import DatabaseLockedError, ReadOnlyError

DIM = 8


def vecs(ids, dim=DIM):
    """Deterministic float32 vectors, one per id (the same in every process)."""
    return np.stack([np.random.default_rng([3, i]).standard_normal(dim, dtype=np.float32)
                     for i in ids]) if len(ids) else np.empty((0, dim), np.float32)


# -- the writer lock -----------------------------------------------------------------------

HOLDER = """
import sys, vecdb
db = vecdb.open(sys.argv[1], timeout=10)
db.get_or_create_collection("c", dim=4).upsert(ids=[1], vectors=[[1, 0, 0, 0]])
print("ready", flush=True)
sys.stdin.readline()
db.close()
print("closed", flush=True)
sys.stdin.read()
"""


def test_writer_lock_across_processes(tmp_path):
    path = str(tmp_path / "db")
    child = Child(HOLDER, path)
    try:
        assert child.line() == "ready"
        t0 = time.monotonic()
        with pytest.raises(DatabaseLockedError) as info:
            vecdb.open(path, timeout=0.3)
        waited = time.monotonic() - t0
        assert 0.25 <= waited < 3.0
        assert path in str(info.value)
        assert isinstance(info.value, TimeoutError)
        # readers are never blocked by the writer
        with vecdb.open(path, readonly=True, timeout=0) as ro:
            assert ro.get_collection("c").count() == 1
        # a waiting writer gets in as soon as the holder lets go
        child.proc.stdin.write(b"release\n")
        t0 = time.monotonic()
        with vecdb.open(path, timeout=10) as db:
            assert time.monotonic() - t0 < 8
            assert child.line() == "closed"
            db.get_collection("c").add(ids=[2], vectors=[[0, 1, 0, 0]])
            assert db.get_collection("c").count() == 2
    finally:
        rc, err = child.close()
    assert rc == 0, err


def test_writer_lock_within_one_process(tmp_path):
    path = str(tmp_path / "db")
    db = vecdb.open(path)
    try:
        db.create_collection("c", dim=4).add(ids=["a"], vectors=[[1, 2, 3, 4]])
        t0 = time.monotonic()
        with pytest.raises(DatabaseLockedError):
            vecdb.open(path, timeout=0.2)
        assert time.monotonic() - t0 >= 0.15
        with pytest.raises(DatabaseLockedError):  # the same directory by another spelling
            vecdb.open(os.path.join(path, ".", ""), timeout=0)
        ro1 = vecdb.open(path, readonly=True, timeout=0)
        ro2 = vecdb.open(path, readonly=True, timeout=0)
        assert [r.id for r in ro1.get_collection("c").get()] == ["a"]
        assert ro2.get_collection("c").count() == 1
        ro1.close()
        db.get_collection("c").add(ids=["b"], vectors=[[4, 3, 2, 1]])
        assert ro2.get_collection("c").count() == 2  # still alive after ro1 closed
        ro2.close()
        with pytest.raises(DatabaseLockedError):
            vecdb.open(path, timeout=0)  # closing readers does not drop the writer's lock
    finally:
        db.close()
    with vecdb.open(path, timeout=0) as db2:
        assert db2.get_collection("c").count() == 2


def test_readonly_handle_cannot_write(tmp_path):
    path = str(tmp_path / "db")
    with vecdb.open(path) as db:
        db.create_collection("c", dim=4).add(ids=[1, 2], vectors=np.eye(4)[:2],
                                             metadatas=[{"x": 1}, {"x": 2}], documents=["a", "b"])
    with vecdb.open(path, readonly=True) as ro:
        col = ro.get_collection("c")
        before = [(r.id, r.metadata, r.document, r.vector.tolist())
                  for r in col.get(include=("metadata", "document", "vector"))]
        attempts = [
            lambda: col.add(ids=[3], vectors=np.eye(4)[2:3]),
            lambda: col.upsert(ids=[1], vectors=np.eye(4)[3:4]),
            lambda: col.update([1], metadatas=[{"x": 9}]),
            lambda: col.update([2], documents=["changed"]),
            lambda: col.delete([1, 2]),
            lambda: ro.create_collection("d", dim=4),
            lambda: ro.drop_collection("c"),
        ]
        for attempt in attempts:
            with pytest.raises(ReadOnlyError) as info:
                attempt()
            assert isinstance(info.value, PermissionError)
        after = [(r.id, r.metadata, r.document, r.vector.tolist())
                 for r in col.get(include=("metadata", "document", "vector"))]
        assert after == before
        assert ro.list_collections() == ["c"]
        assert col.query([1, 0, 0, 0], k=1)[0].id == 1
    with vecdb.open(path, readonly=True) as ro:
        assert [r.id for r in ro.get_collection("c").get()] == [1, 2]
        assert ro.get_collection("c").get(ids=[1])[0].metadata == {"x": 1}


# -- a read-only reader in another process follows commits ----------------------------------

READER = """
import json, sys
import numpy as np
import vecdb
db = vecdb.open(sys.argv[1], readonly=True, timeout=0)
col = db.get_collection("c")
def report(cmd):
    out = {"count": col.count(), "len": len(col), "all": [r.id for r in col.get()]}
    q = np.asarray(cmd.get("queries", []), dtype=np.float32)
    out["nn"] = [res.ids.tolist() for res in col.query(q, k=3)] if len(q) else []
    out["got"] = [r.id for r in col.get(ids=cmd.get("get", []))]
    return out
print(json.dumps(report({})), flush=True)
for line in sys.stdin:
    print(json.dumps(report(json.loads(line))), flush=True)
"""


def test_readonly_process_sees_commits_without_reopening(tmp_path):
    path = str(tmp_path / "db")
    with vecdb.open(path) as db:
        col = db.create_collection("c", dim=DIM, metric="l2")
        reader = Child(READER, path)
        try:
            first = json.loads(reader.line())
            assert first["count"] == first["len"] == 0 and first["all"] == []

            def ask(queries_of=(), get=()):
                reader.send({"queries": vecs(list(queries_of)).tolist(), "get": list(get)})
                return json.loads(reader.line())

            # first batch: the reader maps a segment that did not exist when it opened
            col.add(ids=list(range(50)), vectors=vecs(range(50)),
                    metadatas=[{"i": i} for i in range(50)])
            seen = ask(queries_of=[0, 7, 49], get=[0, 49, 999])
            assert seen["count"] == seen["len"] == 50
            assert seen["all"] == list(range(50))
            assert [nn[0] for nn in seen["nn"]] == [0, 7, 49]
            assert seen["got"] == [0, 49]

            # a larger batch: the segment file grows, the reader remaps it
            new = list(range(1000, 1400))
            col.add(ids=new, vectors=vecs(new))
            seen = ask(queries_of=[1000, 1234, 1399], get=[1000, 1399])
            assert seen["count"] == 450
            assert seen["all"] == list(range(50)) + new
            assert [nn[0] for nn in seen["nn"]] == [1000, 1234, 1399]
            assert seen["got"] == [1000, 1399]

            # deletes and an upsert are seen as well, and deleted ids are never returned
            gone = [0, 7, 1000, 1234, 1399]
            assert col.delete(gone) == 5
            col.upsert(ids=[49], vectors=vecs([1234]))  # 49 now sits where 1234 was
            seen = ask(queries_of=gone, get=gone + [49])
            assert seen["count"] == 445
            assert seen["got"] == [49]
            assert not set(gone) & set(seen["all"])
            for nn in seen["nn"]:
                assert len(nn) == 3 and not set(gone) & set(nn)
            assert seen["nn"][3][0] == 49
        finally:
            rc, err = reader.close()
    assert rc == 0, err


# -- threads -------------------------------------------------------------------------------

def test_queries_during_writes_in_threads(tmp_path):
    k, n_readers, seconds = 10, 4, 2.0
    with vecdb.open(tmp_path / "db", durability="normal") as db:
        col = db.create_collection("c", dim=DIM, metric="l2")
        col.add(ids=list(range(200)), vectors=vecs(range(200)))
        lock = threading.Lock()
        added = set(range(200))          # ids handed to add() (before the call returns)
        deleted = {}                     # id -> monotonic time its delete() returned
        deletes = {"started": 0, "done": 0}
        stop = threading.Event()
        errors = []
        stats = {"queries": 0, "full": 0}

        def writer():
            rng = np.random.default_rng(1)
            next_id = 200
            try:
                while not stop.is_set():
                    ids = list(range(next_id, next_id + 20))
                    next_id += 20
                    with lock:
                        added.update(ids)
                    col.add(ids=ids, vectors=vecs(ids))
                    with lock:
                        live = sorted(added - set(deleted))
                        deletes["started"] += 1
                    victims = rng.choice(live, size=8, replace=False).tolist()
                    assert col.delete(victims) == 8
                    now = time.monotonic()
                    with lock:
                        deleted.update(dict.fromkeys(victims, now))
                        deletes["done"] += 1
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(("writer", repr(e)))

        def reader(seed):
            rng = np.random.default_rng(seed)
            try:
                while not stop.is_set():
                    q = rng.standard_normal(DIM).astype(np.float32)
                    with lock:
                        quiet = deletes["started"] == deletes["done"]
                        started = deletes["started"]
                    t0 = time.monotonic()
                    res = col.query(q, k=k)
                    with lock:
                        quiet = quiet and deletes["started"] == started
                        known, dead = set(added), dict(deleted)
                    ids = res.ids.tolist()
                    assert len(ids) == len(set(ids)) <= k
                    assert set(ids) <= known, f"unknown ids {set(ids) - known}"
                    stale = [i for i in ids if i in dead and dead[i] < t0]
                    assert not stale, f"ids deleted before the query began: {stale}"
                    assert np.all(np.diff(res.distances) >= 0)
                    true = ((vecs(ids).astype(np.float64) - q) ** 2).sum(axis=1)
                    np.testing.assert_allclose(res.distances, true, rtol=1e-4, atol=1e-4)
                    if quiet:  # no delete committed during the query: a full answer
                        assert len(ids) == k
                        stats["full"] += 1
                    stats["queries"] += 1
            except BaseException as e:
                errors.append(("reader", repr(e)))

        threads = [threading.Thread(target=writer)]
        threads += [threading.Thread(target=reader, args=(s,)) for s in range(n_readers)]
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        assert not errors, errors[:5]
        assert stats["queries"] > 20 and stats["full"] > 0, stats
        # the end state is exactly what the writer did
        live = added - set(deleted)
        assert col.count() == len(live)
        assert {r.id for r in col.get()} == live


def test_parallel_queries_match_sequential(tmp_path):
    with vecdb.open(tmp_path / "db", durability="off") as db:
        col = db.create_collection("c", dim=32, metric="cosine")
        rng = np.random.default_rng(2)
        col.add(ids=list(range(3000)), vectors=rng.standard_normal((3000, 32)))
        col.delete(list(range(0, 3000, 7)))
        queries = rng.standard_normal((40, 32)).astype(np.float32)
        expected = [(r.ids.tolist(), r.distances.tolist())
                    for r in (col.query(q, k=15) for q in queries)]
        batch = col.query(queries, k=15, n_threads=2)  # the batch kernel may sum differently
        assert [r.ids.tolist() for r in batch] == [ids for ids, _ in expected]
        np.testing.assert_allclose([r.distances for r in batch], [d for _, d in expected],
                                   rtol=1e-5, atol=1e-6)
        barrier = threading.Barrier(6)
        out, errors = {}, []

        def run(t):
            try:
                barrier.wait(timeout=10)
                out[t] = [(r.ids.tolist(), r.distances.tolist())
                          for r in (col.query(q, k=15) for q in queries)]
            except BaseException as e:
                errors.append(repr(e))

        threads = [threading.Thread(target=run, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert len(out) == 6 and all(res == expected for res in out.values())
        assert not any(i % 7 == 0 for ids, _ in expected for i in ids)


# -- close() while threads query ------------------------------------------------------------

CLOSE_RACE = """
import json, sys, threading, time
import numpy as np
import vecdb
from vecdb.errors import DatabaseClosedError
path = sys.argv[1]
with vecdb.open(path) as db:
    db.create_collection("c", dim=16).add(ids=list(range(2000)),
                                          vectors=np.random.default_rng(0).random((2000, 16)))
outcomes = {"closed": 0, "results": 0, "other": []}
lock = threading.Lock()
for rnd in range(8):
    db = vecdb.open(path, readonly=rnd % 2 == 1, timeout=5)
    col = db.get_collection("c")
    go = threading.Event()
    def worker(seed):
        rng = np.random.default_rng(seed)
        go.wait()
        for n in range(100000):
            try:
                op = n % 4
                if op == 0:
                    assert len(col.query(rng.random(16), k=5)) == 5
                elif op == 1:
                    assert len(col.query(rng.random((3, 16)), k=5)) == 3
                elif op == 2:
                    assert col.count() == 2000
                else:
                    assert len(col.get(limit=20, include=("vector",))) == 20
                with lock:
                    outcomes["results"] += 1
            except DatabaseClosedError:
                with lock:
                    outcomes["closed"] += 1
                return
            except BaseException as e:
                with lock:
                    outcomes["other"].append(f"{type(e).__module__}.{type(e).__name__}: {e}")
                return
        with lock:
            outcomes["other"].append("worker never saw the database close")
    threads = [threading.Thread(target=worker, args=(rnd * 10 + t,)) for t in range(4)]
    for t in threads:
        t.start()
    go.set()
    time.sleep(0.05 + 0.02 * rnd)
    db.close()
    for t in threads:
        t.join(timeout=30)
    if any(t.is_alive() for t in threads):
        outcomes["other"].append("a worker hung after close()")
    try:
        col.query(np.ones(16), k=1)
        outcomes["other"].append("query after close() succeeded")
    except DatabaseClosedError:
        pass
import os
leaked = [f for f in os.listdir("/proc/self/fd")
          if "vectors." in os.path.realpath("/proc/self/fd/" + f)]
if leaked:
    outcomes["other"].append(f"{len(leaked)} segment file descriptors left open after close()")
print(json.dumps(outcomes), flush=True)
"""


def test_close_while_threads_query(tmp_path):
    """Threads querying through close() get a result or DatabaseClosedError; nothing else,
    and the process never crashes (run in a child so a segfault is a failure, not a wipeout)."""
    child = Child(CLOSE_RACE, str(tmp_path / "db"))
    try:
        outcomes = json.loads(child.line(timeout=50))
    finally:
        rc, err = child.close(kill=False)
    assert rc == 0, f"child died with {rc}: {err}"
    assert outcomes["other"] == [], outcomes["other"][:5]
    assert outcomes["closed"] == 8 * 4
    assert outcomes["results"] > 0
