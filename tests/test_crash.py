"""Crash safety (DESIGN.md §3): a writer SIGKILLed at a random moment loses nothing it had
acknowledged, never leaves half a batch visible, and never leaves a stale writer lock.

Each test runs real writer processes (``sys.executable -c <script>``) over a real database in
tmp_path, kills them with SIGKILL, and checks the reopened database against a model the
parent recomputes from the same deterministic batch / operation generators (their source is
injected into the child script, so parent and child cannot disagree about what was written).
"""

from __future__ import annotations

import inspect
import os
import random
import signal
import time
import warnings

import numpy as np
import pytest

import vecdb
from conftest import Child, exact_topk, recall_at_k, text_index_state
from vecdb.errors import DatabaseLockedError

DIM = 16
BATCH = 100          # rows per batch in the add-only test
N_IDS = 300          # id space of the mixed upsert/delete test
OP_SIZE = 20         # ids touched by one mixed operation


# -- deterministic data, shared with the child processes (source injected) -------------------

def batch_data(b):
    """ids, vectors, metadatas, documents of add-batch number b."""
    ids = list(range(b * BATCH, (b + 1) * BATCH))
    vectors = np.random.default_rng([11, b]).standard_normal((BATCH, DIM), dtype=np.float32)
    metadatas = [{"batch": b, "pos": i} for i in range(BATCH)]
    documents = [f"document {i} of batch {b}" for i in ids]
    return ids, vectors, metadatas, documents


def mixed_op(i):
    """Operation number i of the mixed test: ("upsert", ids, vectors) or ("delete", ids, None)."""
    rng = np.random.default_rng([23, i])
    ids = sorted(rng.choice(N_IDS, size=OP_SIZE, replace=False).tolist())
    if i >= 3 and rng.random() < 0.35:
        return "delete", ids[: OP_SIZE // 2], None
    return "upsert", ids, rng.standard_normal((OP_SIZE, DIM), dtype=np.float32)


_PRELUDE = ("import sys, time\nimport numpy as np\nimport vecdb\n"
            f"DIM, BATCH, N_IDS, OP_SIZE = {DIM}, {BATCH}, {N_IDS}, {OP_SIZE}\n"
            + inspect.getsource(batch_data) + inspect.getsource(mixed_op))

ADD_WRITER = _PRELUDE + """
path, durability, b = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = vecdb.open(path, durability=durability, timeout=10)
col = db.get_or_create_collection("c", dim=DIM, metric="l2")
print("ready", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    ids, vectors, metadatas, documents = batch_data(b)
    col.add(ids=ids, vectors=vectors, metadatas=metadatas, documents=documents)
    print(b, flush=True)
    if b % 3 == 0:  # filter columns loaded, caught up and (by flush) checkpointed mid-run
        assert col.count(where={"batch": b}) == BATCH
    if b % 7 == 0:
        col.flush()
    b += 1
"""

MIXED_WRITER = _PRELUDE + """
path, i = sys.argv[1], int(sys.argv[2])
db = vecdb.open(path, durability="full", timeout=10)
col = db.get_or_create_collection("m", dim=DIM, metric="l2")
print("ready", flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    kind, ids, vectors = mixed_op(i)
    if kind == "delete":
        col.delete(ids)
    else:
        col.upsert(ids=ids, vectors=vectors, metadatas=[{"op": i} for _ in ids],
                   documents=[f"{x}@{i}" for x in ids])
    print(i, flush=True)
    i += 1
"""

HOLDER = """
import sys, vecdb
db = vecdb.open(sys.argv[1], timeout=10)
db.get_or_create_collection("c", dim=4)
print("ready", flush=True)
sys.stdin.read()
"""


# -- subprocess helper ---------------------------------------------------------------------

def run_and_kill(script, args, delay):
    """Starts a writer, waits until it is writing, SIGKILLs it after delay s; acked numbers."""
    child = Child(script, *args)
    try:
        assert child.line() == "ready"
        time.sleep(delay)
    finally:
        acked = child.kill()
    assert child.proc.returncode == -signal.SIGKILL, f"the writer died early:\n{child.stderr}"
    return [int(x) for x in acked]


# -- checks --------------------------------------------------------------------------------

def check_exact_queries(col, ids, vectors, n_queries=5, k=10):
    """query() agrees with a numpy brute force over (ids, vectors), the live contents."""
    index = {i: j for j, i in enumerate(ids)}
    queries = np.random.default_rng(5).standard_normal((n_queries, DIM), dtype=np.float32)
    results = col.query(queries, k=k)
    assert len(results) == n_queries
    for q, res in zip(queries, results):
        true = ((vectors.astype(np.float64) - q) ** 2).sum(axis=1)
        assert len(res) == min(k, len(ids))
        got = np.array([true[index[h.id]] for h in res])  # KeyError: a dead / unknown id
        np.testing.assert_allclose(res.distances, got, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.sort(true)[:len(res)], got, rtol=1e-4, atol=1e-4)


def present_batches(path):
    """Opens read-only and checks every row against batch_data; the set of batches present."""
    with vecdb.open(path, readonly=True) as db:
        col = db.get_collection("c")
        records = col.get(include=("metadata", "document", "vector"))
        assert col.count() == len(col) == len(records)
        ids = [r.id for r in records]
        assert len(set(ids)) == len(ids), "an id is stored twice"
        by_batch = {}
        for r in records:
            by_batch.setdefault(r.metadata["batch"], []).append(r)
        for b, recs in by_batch.items():
            want_ids, want_vecs, want_metas, want_docs = batch_data(b)
            assert [r.id for r in recs] == want_ids, f"batch {b} is partial or reordered"
            assert [r.metadata for r in recs] == want_metas
            assert [r.document for r in recs] == want_docs
            np.testing.assert_array_equal(np.stack([r.vector for r in recs]), want_vecs)
        assert col.count() == BATCH * len(by_batch)
        # the filter columns (a checkpoint from before the kill, caught up from LMDB) agree
        for b in by_batch:
            assert col.count(where={"batch": b}) == BATCH
        assert col.count(where={"pos": {"$lt": 10}}) == 10 * len(by_batch)
        assert col.count(where_document={"$contains": "document 7 of"}) == \
            sum(any(r.id == 7 for r in recs) for recs in by_batch.values())
        if records:
            check_exact_queries(col, ids, np.stack([r.vector for r in records]))
        return set(by_batch)


@pytest.mark.parametrize("durability,rounds", [
    ("full", 5), ("normal", 3), pytest.param("full", 25, marks=pytest.mark.slow)])
def test_sigkilled_adds_keep_every_acknowledged_batch(tmp_path, durability, rounds):
    path = str(tmp_path / "db")
    rng = random.Random(durability)
    next_batch = 0
    for r in range(rounds):
        acked = run_and_kill(ADD_WRITER, (path, durability, next_batch), rng.uniform(0.05, 0.4))
        assert acked == list(range(next_batch, next_batch + len(acked)))
        last_acked = acked[-1] if acked else next_batch - 1
        present = present_batches(path)
        # everything acknowledged is there; at most the one in-flight batch beyond it
        assert present in (set(range(last_acked + 1)), set(range(last_acked + 2))), \
            f"round {r}: acked up to {last_acked}, present {sorted(present)}"
        next_batch = max(present, default=-1) + 1
    assert next_batch > rounds, "the writers acknowledged almost nothing; timing too tight?"

    # the crashed database still takes writes, and they survive a clean reopen
    with vecdb.open(path, durability=durability, timeout=0) as db:
        ids, vectors, metadatas, documents = batch_data(next_batch)
        db.get_collection("c").add(ids=ids, vectors=vectors, metadatas=metadatas,
                                   documents=documents)
    assert present_batches(path) == set(range(next_batch + 1))


def expected_state(n_ops):
    """id -> number of the op that last upserted it, after ops [0, n_ops)."""
    state = {}
    for i in range(n_ops):
        kind, ids, _ = mixed_op(i)
        for x in ids:
            if kind == "delete":
                state.pop(x, None)
            else:
                state[x] = i
    return state


def op_vector(i, x):
    _, ids, vectors = mixed_op(i)
    return vectors[ids.index(x)]


def expected_state_all_upserts(n_ops):
    """id -> last op that upserted it (ignoring deletes), over ops [0, n_ops)."""
    last = {}
    for i in range(n_ops):
        kind, ids, _ = mixed_op(i)
        if kind == "upsert":
            last.update(dict.fromkeys(ids, i))
    return last


def test_sigkilled_upserts_and_deletes_keep_invariants(tmp_path):
    path = str(tmp_path / "db")
    rng = random.Random(7)
    next_op = 0
    for r in range(4):
        acked = run_and_kill(MIXED_WRITER, (path, next_op), rng.uniform(0.05, 0.35))
        assert acked == list(range(next_op, next_op + len(acked)))
        done = next_op + len(acked)  # ops [0, done) were acknowledged
        with vecdb.open(path, readonly=True) as db:
            col = db.get_collection("m")
            records = col.get(include=("metadata", "document", "vector"))
            ids = [rec.id for rec in records]
            assert len(set(ids)) == len(ids), f"round {r}: an id appears twice"
            assert col.count() == len(col) == len(records)
            actual = {rec.id: rec.metadata["op"] for rec in records}
            candidates = [expected_state(done), expected_state(done + 1)]
            assert actual in candidates, \
                f"round {r}: state matches neither op {done - 1} nor op {done} applied"
            next_op = done + candidates.index(actual)
            for rec in records:
                assert rec.document == f"{rec.id}@{rec.metadata['op']}"
                np.testing.assert_array_equal(rec.vector, op_vector(rec.metadata["op"], rec.id))
            # the text index committed with the rows: postings equal a recomputation
            postings_state, recomputed = text_index_state(db, col)
            assert postings_state == recomputed, f"round {r}: postings out of step"
            assert postings_state["stats"][0] == len(records)
            if records:
                check_exact_queries(col, ids, np.stack([rec.vector for rec in records]))
            # a deleted id is never returned, even when querying with its own last vector
            last_upsert = expected_state_all_upserts(next_op)
            dead = sorted(set(last_upsert) - set(actual))
            if dead:
                qs = np.stack([op_vector(last_upsert[x], x) for x in dead])
                for res in col.query(qs, k=10):
                    assert not set(res.ids.tolist()) - set(actual)
    assert next_op > 4

    with vecdb.open(path, timeout=0) as db:
        col = db.get_collection("m")
        live = col.count()
        col.upsert(ids=[N_IDS + 1], vectors=np.ones((1, DIM)), metadatas=[{"op": -1}])
        col.delete([x for x in expected_state(next_op)][:3])
        assert col.count() == live + 1 - min(3, live) == len(col.get())
        after = col.count()
    with vecdb.open(path, readonly=True) as db:
        col = db.get_collection("m")
        assert col.count() == after == len(col.get())
        assert col.get(ids=[N_IDS + 1])[0].metadata == {"op": -1}


def test_sigkilled_writer_leaves_no_stale_lock(tmp_path):
    path = str(tmp_path / "db")
    child = Child(HOLDER, path)
    try:
        assert child.line() == "ready"
        with pytest.raises(DatabaseLockedError):
            vecdb.open(path, timeout=0)
    finally:
        child.kill()
    assert child.proc.returncode == -signal.SIGKILL
    assert os.path.exists(os.path.join(path, "LOCK"))  # the file stays; the lock does not
    t0 = time.monotonic()
    with vecdb.open(path, timeout=0) as db:  # timeout=0: no waiting at all
        assert db.list_collections() == ["c"]
        db.get_collection("c").add(ids=[1], vectors=[[1, 2, 3, 4]])
    assert time.monotonic() - t0 < 2.0


# -- SIGKILL during the training of quantized codes / IVF-PQ lists -------------------------------

QDIM = 128
QBATCH = 2000
QBATCHES = 6                     # full batches added (and acknowledged) before the training one
QLAST = 100                      # the small batch that crosses train_size and trains
QTRAIN_AT = QBATCH * QBATCHES + QLAST


def quant_batch(b):
    """ids and vectors of batch b of the training-crash test (a 40-cluster Gaussian mixture);
    batch QBATCHES is the short one that reaches train_size."""
    centers = np.random.default_rng(31).standard_normal((40, QDIM), dtype=np.float32) * 3
    size = QLAST if b == QBATCHES else QBATCH
    rng = np.random.default_rng([37, b])
    labels = rng.integers(0, 40, size=size)
    vectors = centers[labels] + rng.standard_normal((size, QDIM), dtype=np.float32)
    return list(range(b * QBATCH, b * QBATCH + size)), np.ascontiguousarray(vectors)


def quant_collection(db, kind):
    """The collection of the training-crash test: HNSW over PQ codes, or IVF-PQ."""
    if kind == "pq":
        return db.get_or_create_collection(
            "q", dim=QDIM, metric="l2", index=vecdb.HNSW(m=8, ef_construction=40),
            quantization=vecdb.PQ(m=32, train_size=QTRAIN_AT))
    return db.get_or_create_collection(
        "q", dim=QDIM, metric="l2", index=vecdb.IVFPQ(nlist=64, m=32, train_size=QTRAIN_AT))


QUANT_TRAINER = ("import sys, time\nimport numpy as np\nimport vecdb\n"
                 f"QDIM, QBATCH, QBATCHES, QLAST, QTRAIN_AT = "
                 f"{QDIM}, {QBATCH}, {QBATCHES}, {QLAST}, {QTRAIN_AT}\n"
                 + inspect.getsource(quant_batch) + inspect.getsource(quant_collection) + """
path, kind = sys.argv[1], sys.argv[2]
db = vecdb.open(path, durability="full", timeout=10)
col = quant_collection(db, kind)
print("ready", flush=True)
for b in range(QBATCHES):
    ids, vectors = quant_batch(b)
    col.add(ids=ids, vectors=vectors)
    print(b, flush=True)
ids, vectors = quant_batch(QBATCHES)
print("train", flush=True)
t0 = time.monotonic()
col.add(ids=ids, vectors=vectors)      # commits, then trains (codes / lists) in the add
print("trained", round(time.monotonic() - t0, 3), flush=True)
sys.stdin.read()
""")


@pytest.mark.parametrize("kind", ["pq", "ivfpq"])
def test_sigkill_during_training_keeps_rows_and_retrains(tmp_path, kind):
    path = tmp_path / "db"
    child = Child(QUANT_TRAINER, str(path), kind)
    acked = []
    try:
        assert child.line(timeout=60) == "ready"
        while True:
            line = child.line(timeout=120)
            if line == "train":
                break
            acked.append(int(line))
        time.sleep(0.1)  # the batch is committed within ms; training takes over half a second
    finally:
        rest = child.kill()
    assert child.proc.returncode == -signal.SIGKILL, f"the writer died early:\n{child.stderr}"
    assert acked == list(range(QBATCHES))
    assert "trained" not in rest, f"training ended before the kill ({rest}); make it longer"
    checkpoint = "codes.vdbq" if kind == "pq" else "ivfpq.vdbq"
    assert not list(path.glob(f"collections/*/{checkpoint}")), \
        "the training checkpoint exists: the kill came after training"

    batches = [quant_batch(b) for b in range(QBATCHES + 1)]
    X = np.vstack([v for _, v in batches])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "the checkpoint is missing" is fair
        db = vecdb.open(path, timeout=10)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            col = quant_collection(db, kind)
            n = col.count()
        # every acknowledged row; the in-flight batch was committed before training began
        assert n in (QBATCH * QBATCHES, QTRAIN_AT), n
        assert n == QTRAIN_AT, "the training batch was not committed before the kill"
        X = X[:n]
        sample = list(range(0, n, 397)) + [n - 1]
        got = col.get(ids=sample, include=["vector"])
        assert [r.id for r in got] == sample
        np.testing.assert_array_equal(np.stack([r.vector for r in got]), X[sample])
        st = col.stats()["index"]
        info = st["quantization"] if kind == "pq" else st
        assert info["trained"], "the codes were not (re)trained at reopen"
        assert info["trainings"] == 1
        assert (info["encoded_rows"] if kind == "pq" else info["covered_rows"]) == n
        assert list(path.glob(f"collections/*/{checkpoint}")), "retrained but not saved"
        Q = np.random.default_rng(41).standard_normal((30, QDIM), dtype=np.float32) + \
            X[np.random.default_rng(42).integers(0, n, 30)]
        truth, _ = exact_topk(X, Q, 10, "l2")
        results = col.query(Q, k=10, explain=True, rescore=40)  # PQ of 4-d pieces: coarse
        assert results[0].explain["plan"] == ("hnsw" if kind == "pq" else "ivfpq")
        assert results[0].explain["rescored"] > 0
        assert recall_at_k(np.array([r.ids.tolist() for r in results]), truth) >= 0.95
        for q, r in zip(Q, results):
            true = ((X[r.ids.astype(np.int64)].astype(np.float64) - q) ** 2).sum(axis=1)
            np.testing.assert_allclose(r.distances, true, rtol=1e-4, atol=1e-3)
    finally:
        db.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the retrained checkpoint is used as is
        with vecdb.open(path, readonly=True) as db:
            col = db.get_collection("q")
            st = col.stats()["index"]
            assert (st["quantization"] if kind == "pq" else st)["trainings"] == 0
