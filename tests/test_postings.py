"""The LMDB postings of the text index (vecdb/storage/postings.py), on a real LMDB
environment: add / remove / read / drop and the corpus statistics."""

import lmdb
import numpy as np
import pytest

from vecdb.storage import postings
from vecdb.storage.postings import TextStats

A, B = b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"  # two collections' prefixes


@pytest.fixture
def env(tmp_path):
    e = lmdb.open(str(tmp_path / "env"), max_dbs=2, map_size=1 << 26)
    dbs = (e.open_db(b"postings", dupsort=True, dupfixed=True), e.open_db(b"meta"))
    yield e, dbs
    e.close()


def _read(e, db, prefix, term):
    with e.begin() as txn:
        p = postings.read(txn, db, prefix, term)
    return [(int(r), int(t), int(d)) for r, t, d in zip(p["row"], p["tf"], p["dl"])]


def test_add_read_remove_and_stats(env):
    e, (db, meta) = env
    with e.begin(write=True) as txn:
        stats = TextStats.load(txn, meta, A)
        postings.add(txn, db, A, 7, {"aapl": 2, "rises": 1}, stats)
        postings.add(txn, db, A, 3, {"aapl": 1}, stats)
        postings.add(txn, db, A, 9, {}, stats)  # no terms: no postings, not counted
        postings.add(txn, db, B, 3, {"aapl": 5}, TextStats())
        stats.save(txn, meta, A)
    assert _read(e, db, A, "aapl") == [(3, 1, 1), (7, 2, 3)]  # ascending rows
    assert _read(e, db, A, "rises") == [(7, 1, 3)]
    assert _read(e, db, A, "missing") == []
    assert _read(e, db, B, "aapl") == [(3, 5, 5)]
    with e.begin() as txn:
        stats = TextStats.load(txn, meta, A)
    assert (stats.docs, stats.terms, stats.average_length) == (2, 4, 2.0)

    with e.begin(write=True) as txn:
        stats = TextStats.load(txn, meta, A)
        postings.remove(txn, db, A, 7, {"aapl": 2, "rises": 1}, stats)
        stats.save(txn, meta, A)
    assert _read(e, db, A, "aapl") == [(3, 1, 1)]
    assert _read(e, db, A, "rises") == []
    with e.begin() as txn:
        assert TextStats.load(txn, meta, A) == TextStats(1, 1)


def test_many_postings_come_back_in_one_read(env):
    e, (db, meta) = env
    rows = np.random.default_rng(0).permutation(50_000)
    with e.begin(write=True) as txn:
        stats = TextStats()
        for r in rows.tolist():
            postings.add(txn, db, A, r, {"common": 1 + r % 3, f"t{r % 7}": 1}, stats)
    with e.begin() as txn:
        p = postings.read(txn, db, A, "common")
    assert p.dtype == postings.POSTING_DTYPE
    assert (p["row"] == np.arange(50_000)).all()
    assert (p["tf"] == 1 + np.arange(50_000) % 3).all()
    assert (p["dl"] == p["tf"] + 1).all()


def test_long_terms_are_cut_at_a_character_boundary_and_merge(env):
    e, (db, meta) = env
    stem = "é" * (postings.MAX_TERM_BYTES // 2)  # 2 bytes each: exactly the limit
    one, two = stem + "x", stem + "yz"
    assert postings.term_key(A, one) == postings.term_key(A, two) == A + stem.encode()
    odd = "a" + stem  # the cut would split an é: it is dropped whole
    assert postings.term_key(A, odd) == A + ("a" + stem[:-1]).encode()
    with e.begin(write=True) as txn:
        stats = TextStats()
        postings.add(txn, db, A, 1, {one: 1, two: 2}, stats)
        postings.remove(txn, db, A, 1, {one: 1, two: 2}, stats)
        assert stats == TextStats(0, 0)
    assert _read(e, db, A, one) == []


def test_drop_removes_one_collection(env):
    e, (db, meta) = env
    with e.begin(write=True) as txn:
        for prefix in (A, B):
            stats = TextStats()
            postings.add(txn, db, prefix, 1, {"x": 1, "y": 2}, stats)
            stats.save(txn, meta, prefix)
        postings.drop(txn, db, meta, A)
    assert _read(e, db, A, "x") == [] and _read(e, db, A, "y") == []
    assert _read(e, db, B, "y") == [(1, 2, 3)]
    with e.begin() as txn:
        assert TextStats.load(txn, meta, A) == TextStats()
        assert TextStats.load(txn, meta, B) == TextStats(1, 3)


def _dump(e, db):
    with e.begin() as txn, txn.cursor(db=db) as cur:
        return list(cur.iternext(keys=True, values=True))


def test_put_documents_stores_what_entries_and_put_store(tmp_path):
    """The batched writer equals the one-document path, also for terms cut to one key
    (invariant 3) inside one document and across documents, and for empty documents."""
    rng = np.random.default_rng(5)
    long_a, long_b = "é" * 130 + "a", "é" * 130 + "b"  # both cut to the same 256 bytes
    words = ["aapl", "b", "zz", "gpt-4o", "東京", long_a, long_b, "x" * 64]
    docs = []
    for row in rng.permutation(300).tolist():
        chosen = rng.choice(len(words), size=int(rng.integers(0, 5)), replace=False)
        docs.append((row, {words[i]: int(rng.integers(1, 4)) for i in chosen}))
    docs.append((400, {long_a: 2, long_b: 3, "b": 1}))
    dumps, stats = [], []
    for batched in (False, True):
        e = lmdb.open(str(tmp_path / f"env{batched}"), max_dbs=2, map_size=1 << 26)
        db = e.open_db(b"postings", dupsort=True, dupfixed=True)
        s = TextStats()
        with e.begin(write=True) as txn:
            if batched:
                postings.put_documents(txn, db, A, docs, s)
            else:
                for row, counts in docs:
                    postings.put(txn, db, postings.entries(A, row, counts, s))
        dumps.append(_dump(e, db))
        stats.append(s)
        e.close()
    assert dumps[0] == dumps[1] and stats[0] == stats[1]
    key = postings.term_key(A, long_a)
    assert [(k, postings.POSTING.unpack(v)) for k, v in dumps[1] if k == key and
            postings.POSTING.unpack(v)[0] == 400] == [(key, (400, 5, 6))]
