"""db.check() and db.check(repair=True) (vecdb/io/check*.py): a healthy database passes with
no problem; each kind of deliberate damage is found precisely; repair rebuilds what is
derived, after which the database answers exactly as before the damage; damage to a source
of truth is reported as not repairable; repair=False changes nothing.

Every test works on a copy of one database built once per module (HNSW with deletes,
upserts, updates and a vacuum; IVF-PQ; Flat with str ids; SQ8 and PQ quantized; documents
and filter columns), damaged with raw LMDB edits or file writes."""

import json
import os
import shutil
import struct

import numpy as np
import pytest
from conftest import during, flip_bytes, random_vectors, text_index_state

import vecdb
from vecdb.storage import catalog, keys, postings, records
from vecdb.storage.segments import HEADER_BYTES

DIM = 16
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
QUERIES = random_vectors(4, DIM, seed=9)
WHERE = {"year": {"$gte": 2010}}


def _documents(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(2, 7)))) for _ in range(n)]


def _metadatas(n, offset=0):
    return [{"year": 2000 + (i + offset) % 20, "tag": WORDS[(i + offset) % 5],
             "tags": [WORDS[(i + offset) % 3], (i + offset) % 7], "score": (i % 9) / 4}
            for i in range(n)]


def _build(path):
    """The healthy database every test starts from; returns what it answers."""
    X = random_vectors(2600, DIM, seed=1)
    with vecdb.open(path) as db:
        h = db.create_collection("h", dim=DIM, metric="l2")
        h.add(ids=list(range(2000)), vectors=X[:2000], metadatas=_metadatas(2000),
              documents=_documents(2000, 2))
        h.delete(ids=list(range(0, 1200, 2)))
        h.vacuum()  # generation 1
        h.upsert(ids=list(range(1, 101, 2)), vectors=X[2000:2050], metadatas=_metadatas(50, 7),
                 documents=_documents(50, 3))
        h.delete(ids=[1001, 1003])
        h.update(ids=[1501, 1502], metadatas=[{"year": 1999}, {"year": 2030, "new": True}],
                 documents=["a new document alpha", "another one"])
        assert h.count(where=WHERE) > 0  # builds the filter columns
        h.flush()
        h.update(ids=[1600], metadatas=[{"year": 1900}])  # an edit past the checkpoint
        iv = db.create_collection("iv", dim=DIM, metric="l2", index=vecdb.IVFPQ(nlist=8, m=4))
        iv.add(ids=list(range(1000)), vectors=X[:1000], documents=_documents(1000, 4))
        flat = db.create_collection("flat", dim=DIM, index=vecdb.Flat(), text_index=False)
        flat.add(ids=[f"s{i}" for i in range(500)], vectors=X[:500], metadatas=_metadatas(500))
        flat.delete(ids=["s3"])
        q = db.create_collection("q", dim=DIM, quantization=vecdb.SQ8(train_size=400))
        q.add(ids=list(range(600)), vectors=X[:600], documents=_documents(600, 5))
        pq = db.create_collection("pq", dim=DIM, metric="ip",
                                  quantization=vecdb.PQ(m=4, train_size=256))
        pq.add(ids=list(range(-300, 300)), vectors=X[:600])
        return _answers(db)


def _answers(db):
    """What the database answers: counts, queries (filtered, ids only), get, keyword search."""
    out = {}
    for name in db.list_collections():
        col = db.get_collection(name)
        got = col.get(ids=[5, 6, "s5", -7, 1501, 1600], include=("metadata", "document",
                                                                   "vector"))
        out[name] = {
            "count": col.count(),
            "where": col.count(where=WHERE) if name in ("h", "flat") else None,
            "query": [r.ids.tolist() for r in col.query(QUERIES, k=10)],
            "ids_only": [r.ids.tolist() for r in col.query(QUERIES, k=10, include=())],
            "filtered": [r.ids.tolist() for r in col.query(QUERIES, k=10, where=WHERE)]
            if name in ("h", "flat") else None,
            "get": [(r.id, r.metadata, r.document, r.vector.tolist()) for r in got],
            "text": [(r.ids.tolist(), np.round(r.scores, 5).tolist())
                     for r in col.query(text=["alpha beta", "theta"], k=10)]
            if col.text_index else None,
        }
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("check") / "template.vdb"
    return path, _build(path)


@pytest.fixture
def copy(template, tmp_path):
    """(path of a fresh copy of the template database, its answers)."""
    path = tmp_path / "db.vdb"
    shutil.copytree(template[0], path)
    return path, template[1]


def _info(db, name):
    with db._env.read() as txn:
        info = catalog.get(txn, db._env.dbs, name)
        w, t, g, e = keys.unpack_state(txn.get(info.prefix, db=db._env.dbs["state"]))
    base = db.path + "/collections/" + info.uuid
    return info, (w, t, g, e), base if g == 0 else f"{base}.v{g}"


def _of(report, component, collection=None):
    return [p for p in report.problems if p.component == component and
            (collection is None or p.collection == collection)]


def _repair_and_compare(db, answers, component, collection):
    """Repairs; the report marks the component's problems repaired and is ok; a new check
    finds nothing; the database answers as before the damage."""
    report = db.check(repair=True)
    fixed = _of(report, component, collection)
    assert fixed and all(p.repairable and p.repaired for p in fixed), str(report)
    assert report.ok, str(report)
    again = db.check()
    assert again.ok and not again.problems, str(again)
    assert _answers(db) == answers
    return report


def _lmdb_dump(db):
    env = db._env
    out = {}
    with env.read() as txn:
        for name, handle in env.dbs.items():
            with txn.cursor(db=handle) as cur:
                out[name] = list(cur.iternext())
    return out


def _file_bytes(path):
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            if name != "lock.mdb":
                with open(os.path.join(root, name), "rb") as f:
                    out[os.path.relpath(os.path.join(root, name), path)] = f.read()
    return out


# -- healthy ----------------------------------------------------------------------------------

def test_healthy_database_is_ok(copy):
    path, answers = copy
    seen = []
    with vecdb.open(path) as db:
        report = db.check(progress=lambda done, total: seen.append((done, total)))
        assert report.ok and report.problems == [], str(report)
        summary = {c.name: c for c in report.collections}
        assert set(summary) == {"h", "iv", "flat", "q", "pq"}
        h = db.get_collection("h")
        assert (summary["h"].rows, summary["h"].live) == (h.stats()["rows"], h.count())
        assert summary["h"].generation == 1 and summary["h"].tombstones > 0
        assert summary["flat"].tombstones == 1 and summary["flat"].live == 499
        names = {os.path.basename(f) for f in summary["h"].files_checked}
        assert {"hnsw.graph", "filters.cols", "vectors.0.f32", "ids.0.i64"} <= names
        assert "codes.vdbq" in {os.path.basename(f) for f in summary["q"].files_checked}
        assert "ivfpq.vdbq" in {os.path.basename(f) for f in summary["iv"].files_checked}
        total = sum(c.rows for c in report.collections)
        assert seen and seen[-1] == (total, total)
        data = json.loads(json.dumps(report.to_dict()))
        assert data["ok"] is True and len(data["collections"]) == 5
        text = str(report)
        assert "ok, 0 problem(s)" in text and "flat" in text
        assert db.check(repair=True).ok
        assert _answers(db) == answers


def test_bad_arguments_and_read_only(copy):
    path, _ = copy
    with vecdb.open(path) as db:
        with pytest.raises(vecdb.InvalidArgumentError, match="repair"):
            db.check(repair="yes")
        with pytest.raises(vecdb.InvalidArgumentError, match="progress"):
            db.check(progress=5)
    with pytest.raises(vecdb.DatabaseClosedError):
        db.check()
    graph = next(path.glob("collections/*.v1/hnsw.graph"))
    flip_bytes(graph, graph.stat().st_size // 2)
    before = _file_bytes(path)
    with vecdb.open(path, readonly=True) as db:
        report = db.check()
        assert [p.component for p in report.problems] == ["graph"] and not report.ok
        with pytest.raises(vecdb.ReadOnlyError, match="repair"):
            db.check(repair=True)
    assert _file_bytes(path) == before


def test_check_without_repair_changes_nothing(copy):
    path, _ = copy
    graph = next(path.glob("collections/*.v1/hnsw.graph"))
    flip_bytes(graph, graph.stat().st_size // 2)
    with vecdb.open(path) as db:
        info, _, gen_dir = _info(db, "h")
        db._env.write(lambda txn: txn.delete(keys.id_key(info.prefix, 5),
                                             db=db._env.dbs["ids"]), sync=True)
        os.makedirs(f"{gen_dir[:-3]}.v0")  # a stray old generation
        lmdb_before, files_before = _lmdb_dump(db), _file_bytes(path)
        report = db.check()
        assert {p.component for p in report.problems} == {"graph", "ids", "files"}
        assert not any(p.repaired for p in report.problems)
        assert _lmdb_dump(db) == lmdb_before
        assert _file_bytes(path) == files_before
        assert os.path.isdir(f"{gen_dir[:-3]}.v0")


# -- derived state: found and repaired -----------------------------------------------------------

def test_damaged_graph_body(copy):
    path, answers = copy
    graph = next(path.glob("collections/*.v1/hnsw.graph"))
    flip_bytes(graph, graph.stat().st_size // 2, 8)
    with vecdb.open(path) as db:
        report = db.check()
        [problem] = report.problems
        assert (problem.collection, problem.component) == ("h", "graph")
        assert "hnsw.graph" in problem.message and "body checksum" in problem.message
        assert problem.repairable and not problem.repaired and not report.ok
        _repair_and_compare(db, answers, "graph", "h")
        assert db.get_collection("h")._rows.index.wait_verified(30)


def test_ids_entry_deleted_or_pointing_at_a_wrong_row(copy):
    path, answers = copy
    with vecdb.open(path) as db:
        info, _, _ = _info(db, "h")
        ids_db = db._env.dbs["ids"]
        with db._env.read() as txn:
            row_a = keys.unpack_u64(txn.get(keys.id_key(info.prefix, 1302), db=ids_db))
            row_b = keys.unpack_u64(txn.get(keys.id_key(info.prefix, 1304), db=ids_db))

        def damage(txn):
            txn.delete(keys.id_key(info.prefix, 1301), db=ids_db)
            txn.put(keys.id_key(info.prefix, 1302), keys.pack_u64(row_b), db=ids_db)

        db._env.write(damage, sync=True)
        assert db.get_collection("h").get(ids=[1301]) == []
        messages = [p.message for p in db.check().problems]
        assert len(messages) == 3
        assert any("holds id 1301, which the ids table lacks" in m for m in messages)
        assert f"id 1302 maps to row {row_b}, which holds id 1304" in messages
        assert f"row {row_a} holds id 1302, which the ids table maps to row {row_b}" in messages
        _repair_and_compare(db, answers, "ids", "h")


def test_damaged_filter_columns(copy):
    path, answers = copy
    cols = next(path.glob("collections/*.v1/filters.cols"))
    flip_bytes(cols, 64 + 8, 1)  # inside the first array of the first field
    with vecdb.open(path) as db:
        [problem] = db.check().problems
        assert (problem.collection, problem.component) == ("h", "filters")
        assert "filters.cols" in problem.message and "checksum" in problem.message
        _repair_and_compare(db, answers, "filters", "h")
        assert cols.exists()  # rebuilt from the records and checkpointed


def test_filter_columns_that_disagree_with_the_records(copy):
    path, _ = copy
    with vecdb.open(path) as db:
        info, _, _ = _info(db, "h")
        rows_db = db._env.dbs["rows"]
        with db._env.read() as txn:
            row = keys.unpack_u64(txn.get(keys.id_key(info.prefix, 7), db=db._env.dbs["ids"]))
            _, meta, doc = records.decode(txn.get(keys.row_key(info.prefix, row), db=rows_db))
        # the record changes behind the columns' back (no edit-log entry)
        db._env.write(lambda txn: txn.put(keys.row_key(info.prefix, row), records.encode(
            7, {**meta, "year": 1234}, doc), db=rows_db), sync=True)
        [problem] = db.check().problems
        assert problem.component == "filters"
        assert f"field 'year' of row {row} (id 7) is {meta['year']} in the checkpoint, " \
               f"1234 in its record" in problem.message
        report = db.check(repair=True)
        assert report.ok and report.problems[0].repaired
        assert db.get_collection("h").count(where={"year": 1234}) == 1
        assert db.check().ok


def test_postings_entry_removed(copy):
    path, answers = copy
    with vecdb.open(path) as db:
        info, _, _ = _info(db, "iv")
        pdb = db._env.dbs["postings"]
        with db._env.read() as txn:
            found = postings.read(txn, pdb, info.prefix, "alpha")
        row, tf, dl = (int(v) for v in found[3])
        db._env.write(lambda txn: txn.delete(postings.term_key(info.prefix, "alpha"),
                                             postings.POSTING.pack(row, tf, dl), db=pdb),
                      sync=True)
        report = db.check()
        [problem] = report.problems
        assert (problem.collection, problem.component) == ("iv", "postings")
        assert problem.message.startswith(f"row {row} (id {row}): ")
        assert f"missing 'alpha' (tf {tf}, length {dl})" in problem.message
        _repair_and_compare(db, answers, "postings", "iv")
        state, expected = text_index_state(db, db.get_collection("iv"))
        assert state == expected


def test_text_statistics_wrong(copy):
    path, answers = copy
    with vecdb.open(path) as db:
        info, _, _ = _info(db, "q")
        meta = db._env.dbs["meta"]
        with db._env.read() as txn:
            stats = postings.TextStats.load(txn, meta, info.prefix)
        db._env.write(lambda txn: postings.TextStats(stats.docs + 1, stats.terms).save(
            txn, meta, info.prefix), sync=True)
        [problem] = db.check().problems
        assert f"say {stats.docs + 1} documents" in problem.message
        _repair_and_compare(db, answers, "postings", "q")


def test_stray_folders(copy):
    path, answers = copy
    with vecdb.open(path) as db:
        _, _, gen_dir = _info(db, "h")
        old = f"{gen_dir[:-3]}.v0"
        dropped = os.path.join(db.path, "collections", "ab" * 16)
        temp, fresh_temp = os.path.join(gen_dir, "hnsw.graph.tmp"), os.path.join(
            gen_dir, "filters.cols.tmp")
        for folder in (old, dropped):
            os.makedirs(folder)
            with open(os.path.join(folder, "vectors.0.f32"), "wb") as f:
                f.write(b"x" * 100)
        for name in (temp, fresh_temp):
            with open(name, "wb") as f:
                f.write(b"partial")
        os.utime(temp, (1e9, 1e9))  # left by a crash long ago; fresh_temp may be in use
        report = db.check()
        messages = {os.path.basename(p.message.split()[0]): p.message
                    for p in report.problems}
        assert [p.component for p in report.problems] == ["files"] * 3
        assert messages.keys() == {os.path.basename(old), os.path.basename(dropped),
                                   "hnsw.graph.tmp"}
        assert "a temp file a crashed checkpoint write left" in messages["hnsw.graph.tmp"]
        assert "is an old generation folder" in messages[os.path.basename(old)]
        assert messages[os.path.basename(dropped)].startswith("collections/")
        assert "a dropped one" in messages[os.path.basename(dropped)]
        _repair_and_compare(db, answers, "files", None)
        assert not os.path.exists(old) and not os.path.exists(dropped)
        assert not os.path.exists(temp) and os.path.exists(fresh_temp)
        assert os.path.isdir(gen_dir)


def test_damaged_id_column(copy):
    path, answers = copy
    column = next(path.glob("collections/*.v1/ids.0.i64"))
    with open(column, "r+b") as f:
        f.seek(HEADER_BYTES + 8 * 100)  # row 100 of generation 1: id 201 (the 101st odd id)
        f.write(np.int64(424242).tobytes())
    with vecdb.open(path) as db:
        [problem] = db.check().problems
        assert problem.component == "id_column"
        assert problem.message.startswith("row 100 (id 201): ")
        assert f"ids.0.i64 holds 424242 (offset {HEADER_BYTES + 800})" in problem.message
        _repair_and_compare(db, answers, "id_column", "h")


def test_damaged_codes_and_ivfpq_lists_are_retrained(copy):
    path, answers = copy
    with vecdb.open(path) as db:
        _, _, q_dir = _info(db, "q")
        _, _, iv_dir = _info(db, "iv")
    for name in (q_dir + "/codes.vdbq", iv_dir + "/ivfpq.vdbq"):
        flip_bytes(name, os.path.getsize(name) // 2, 4)
    with vecdb.open(path) as db:
        report = db.check()
        assert sorted((p.collection, p.component) for p in report.problems) == \
            [("iv", "ivfpq"), ("q", "codes")]
        assert all("checksum" in p.message for p in report.problems)
        report = db.check(repair=True)
        assert report.ok and all(p.repaired for p in report.problems), str(report)
        assert db.check().ok
        now = _answers(db)
        for name in ("h", "flat", "pq"):
            assert now[name] == answers[name]
        for name in ("q", "iv"):  # trained again: same items, queries still find neighbours
            assert {k: v for k, v in now[name].items() if "query" not in k and k != "ids_only"} \
                == {k: v for k, v in answers[name].items() if "query" not in k and
                    k != "ids_only"}
            assert np.mean([len(set(a) & set(b)) / 10 for a, b in
                            zip(now[name]["query"], answers[name]["query"])]) >= 0.8


def test_tombstone_count_and_duplicate_live_id(copy):
    path, answers = copy
    with vecdb.open(path) as db:
        info, (w, t, g, e), _ = _info(db, "flat")
        dbs = db._env.dbs
        with db._env.read() as txn:
            row_a = keys.unpack_u64(txn.get(keys.id_key(info.prefix, "s10"), db=dbs["ids"]))
            row_b = keys.unpack_u64(txn.get(keys.id_key(info.prefix, "s20"), db=dbs["ids"]))
            record_a = txn.get(keys.row_key(info.prefix, row_a), db=dbs["rows"])
        vector_b = db.get_collection("flat").get(ids=["s20"], include=("vector",))[0].vector

        def damage(txn):
            txn.put(info.prefix, keys.pack_state(w, t + 2, g, e), db=dbs["state"])
            txn.put(keys.row_key(info.prefix, row_b), record_a, db=dbs["rows"])  # s10 twice

        db._env.write(damage, sync=True)
        messages = [p.message for p in db.check().problems]
        assert f"the state counts {t + 2} tombstones, the tombstone log holds {t}" in messages
        assert any(f"id 's10' is held by live rows {row_a} and {row_b}" in m for m in messages)
        report = db.check(repair=True)
        assert report.ok, str(report)
        col = db.get_collection("flat")
        # row b keeps s10 (the later row wins), row a is tombstoned, s20 has no row left
        assert col.count() == answers["flat"]["count"] - 1
        assert col.get(ids=["s20"]) == []
        assert col.get(ids=["s10"], include=("vector",))[0].vector.tolist() == \
            vector_b.tolist()
        assert db.check().ok
        assert _info(db, "flat")[1][1] == t + 1


# -- sources of truth: found, not repaired --------------------------------------------------------

def test_truncated_vector_segment_is_not_repairable(copy):
    path, answers = copy
    with vecdb.open(path) as db:
        _, (w, _, _, _), gen_dir = _info(db, "flat")
    segment = os.path.join(gen_dir, "vectors.0.f32")
    os.truncate(segment, HEADER_BYTES + 100 * DIM * 4)
    with vecdb.open(path) as db:
        report = db.check()
        [problem] = report.problems
        assert (problem.collection, problem.component) == ("flat", "segments")
        assert not problem.repairable
        assert f"holds 100 rows; the watermark W = {w} needs {w}" in problem.message
        assert f"rows 100..{w - 1} are missing" in problem.message
        report = db.check(repair=True)
        assert not report.ok and not report.problems[0].repaired
        assert "NOT repairable" in str(report)
        for name in ("h", "iv", "q", "pq"):
            col = db.get_collection(name)
            assert col.count() == answers[name]["count"]
            assert [r.ids.tolist() for r in col.query(QUERIES, k=10)] == answers[name]["query"]


def test_non_finite_vector_is_not_repairable(copy):
    path, _ = copy
    segment = next(path.glob("collections/*.v1/vectors.0.f32"))
    with open(segment, "r+b") as f:
        f.seek(HEADER_BYTES + 100 * DIM * 4 + 12)
        f.write(np.float32(np.nan).tobytes())
    with vecdb.open(path) as db:
        report = db.check(repair=True)
        [problem] = report.problems
        assert (problem.component, problem.repairable, problem.repaired) == \
            ("segments", False, False)
        assert problem.message.startswith("row 100 (id 201) of collections/")
        assert f"vectors.0.f32 (offset {HEADER_BYTES + 100 * DIM * 4}) holds a non-finite " \
               f"value" in problem.message


def test_lost_record_is_reported_and_kept(copy):
    path, _ = copy
    with vecdb.open(path) as db:
        info, _, _ = _info(db, "q")
        dbs = db._env.dbs
        with db._env.read() as txn:
            row = keys.unpack_u64(txn.get(keys.id_key(info.prefix, 42), db=dbs["ids"]))
        db._env.write(lambda txn: txn.delete(keys.row_key(info.prefix, row), db=dbs["rows"]),
                      sync=True)
        report = db.check(repair=True)
        lost = [p for p in report.problems if p.component == "rows"]
        assert len(lost) == 1 and not lost[0].repairable and not lost[0].repaired
        assert f"row {row} holds no record and is not tombstoned" in lost[0].message
        assert not report.ok
        with db._env.read() as txn:  # the ids entry next to the damage is left as it is
            assert txn.get(keys.id_key(info.prefix, 42), db=dbs["ids"]) == keys.pack_u64(row)
        assert [p.component for p in db.check().problems] == ["rows"]


def test_edit_and_tombstone_logs_out_of_step(copy):
    path, answers = copy
    with vecdb.open(path) as db:
        info, (w, t, g, e), _ = _info(db, "h")
        dbs = db._env.dbs
        with db._env.read() as txn:
            dead = keys.unpack_u64(txn.get(keys.row_key(info.prefix, 0), db=dbs["tombs"]))

        def damage(txn):
            txn.put(keys.row_key(info.prefix, t), keys.pack_u64(dead), db=dbs["tombs"])
            txn.put(keys.row_key(info.prefix, t + 1), keys.pack_u64(w + 5), db=dbs["tombs"])
            txn.put(info.prefix, keys.pack_state(w, t + 2, g, e + 3), db=dbs["state"])

        db._env.write(damage, sync=True)
        messages = {p.message for p in db.check().problems}
        assert messages == {f"row {dead} is tombstoned 2 times (log entries [0, {t}])",
                            f"tombstone {t + 1} names row {w + 5}, past the watermark W = {w}",
                            f"the state counts {e + 3} edits, the edit log holds {e}"}
        _repair_and_compare(db, answers, "tombstones", "h")
        assert _info(db, "h")[1] == (w, t, g, e)


def test_keys_of_no_collection_and_next_cid(copy):
    path, answers = copy
    with vecdb.open(path) as db:
        dbs, ghost = db._env.dbs, keys.cid_prefix(999)

        def damage(txn):
            txn.put(keys.row_key(ghost, 0), records.encode(1, None, "x"), db=dbs["rows"])
            txn.put(postings.term_key(ghost, "x"), postings.POSTING.pack(0, 1, 1),
                    db=dbs["postings"])
            postings.TextStats(1, 1).save(txn, dbs["meta"], ghost)
            txn.put(b"next_cid", keys.pack_u64(2), db=dbs["meta"])

        db._env.write(damage, sync=True)
        report = db.check()
        assert {p.component for p in report.problems} == {"catalog"}
        assert len(report.problems) == 4 and all(p.collection is None for p in report.problems)
        assert "table 'rows' holds 1 key(s) of collection number 999, which does not exist" \
            in {p.message for p in report.problems}
        _repair_and_compare(db, answers, "catalog", None)
        db.create_collection("new", dim=2)  # gets a number of its own
        assert db.check().ok


def test_repair_while_queries_run(copy):
    path, answers = copy
    graph = next(path.glob("collections/*.v1/hnsw.graph"))
    flip_bytes(graph, graph.stat().st_size // 2)
    with vecdb.open(path) as db:
        col = db.get_collection("h")
        assert not col._rows.index.wait_verified(30)  # the handle found the damage too
        reports = []

        def query(rng):
            hits = col.query(QUERIES, k=10)
            assert [h.ids.tolist() for h in hits] == answers["h"]["query"]

        during(lambda: reports.append(db.check(repair=True)), query, threads=2)
        assert reports[0].ok and reports[0].problems[0].repaired
        assert _answers(db) == answers


def _crc32c(data, crc=0):
    table = getattr(_crc32c, "table", None)
    if table is None:
        table = _crc32c.table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            table.append(c)
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_graph_with_valid_checksums_but_bad_links(db_path):
    with vecdb.open(db_path) as db:
        col = db.create_collection("g", dim=8, metric="l2", index=vecdb.HNSW(m=4))
        col.add(ids=list(range(300)), vectors=random_vectors(300, 8, seed=4))
    graph = next(db_path.glob("collections/*/hnsw.graph"))
    image = bytearray(graph.read_bytes())
    n, level0 = struct.unpack_from("<Q", image, 48)[0], struct.unpack_from("<Q", image, 72)[0]
    assert _crc32c(image[160:]) == struct.unpack_from("<I", image, 136)[0]  # the same CRC
    struct.pack_into("<II", image, level0 + 3 * 9 * 4, 9, n + 5)  # node 3: 9 links, one bad
    struct.pack_into("<I", image, 136, _crc32c(image[160:]))
    struct.pack_into("<I", image, 156, _crc32c(image[:156]))
    graph.write_bytes(bytes(image))
    with vecdb.open(db_path) as db:
        messages = {p.message.split(": ", 1)[1] for p in db.check().problems}
        assert messages == {"node 3 has 9 level-0 links (at most 8)",
                            f"node 3 links to node {n + 5} at level 0 (the graph has {n} nodes)"}
        assert db.check(repair=True).ok and db.check().ok
