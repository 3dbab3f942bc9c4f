"""Online backup and verified restore (vecdb/io/backup.py, vecdb/io/archive.py): quiescent
round trips over every index kind, a backup taken while another thread writes, a read-only
backup whose checkpoint lags (restore replays the tail), damaged / truncated / forged
archives (restore refuses and writes nothing), and argument checks."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import warnings

import numpy as np
import pytest
import zstandard
from conftest import exact_topk, flip_bytes, random_vectors

import vecdb
from vecdb.io import archive as archive_mod

DIM = 16
WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma")


def _docs(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(WORDS[j] for j in rng.integers(0, len(WORDS), size=4)) for _ in range(n)]


def _build_db(db):
    """Collections covering every index kind, id type, deletes, upserts and a vacuum."""
    X = random_vectors(1200, DIM, seed=1)
    metas = [{"group": i % 7, "even": i % 2 == 0} for i in range(1200)]
    docs = _docs(1200, 2)

    col = db.create_collection("hnsw_str", dim=DIM, metric="cosine")
    col.add(ids=[f"s{i}" for i in range(1000)], vectors=X[:1000], metadatas=metas[:1000],
            documents=docs[:1000])
    col.delete(ids=[f"s{i}" for i in range(0, 1000, 9)])
    col.upsert(ids=[f"s{i}" for i in range(1, 200, 5)], vectors=X[1000:1040],
               metadatas=metas[1000:1040], documents=docs[1000:1040])

    flat = db.create_collection("flat_int", dim=DIM, metric="l2", index=vecdb.Flat())
    flat.add(ids=list(range(-300, 300)), vectors=X[:600], metadatas=metas[:600],
             documents=docs[:600])
    flat.delete(where={"group": 3})

    ivf = db.create_collection("ivfpq", dim=DIM, metric="l2",
                               index=vecdb.IVFPQ(nlist=8, m=4, nprobe=4, train_size=50_000))
    ivf.add(ids=list(range(1200)), vectors=X, metadatas=metas)
    assert ivf.optimize()["trained"] is True

    sq8 = db.create_collection("hnsw_sq8", dim=DIM, metric="ip",
                               quantization=vecdb.SQ8(train_size=500))
    sq8.add(ids=list(range(800)), vectors=X[:800], metadatas=metas[:800])

    pq = db.create_collection("hnsw_pq", dim=DIM, metric="l2",
                              quantization=vecdb.PQ(m=4, train_size=400))
    pq.add(ids=list(range(800)), vectors=X[400:1200])

    vac = db.create_collection("vacuumed", dim=DIM, metric="l2")
    vac.add(ids=list(range(600)), vectors=X[:600], metadatas=metas[:600], documents=docs[:600])
    vac.delete(ids=list(range(0, 600, 3)))
    assert vac.vacuum()["generation"] == 1
    vac.add(ids=list(range(600, 700)), vectors=X[600:700], metadatas=metas[600:700],
            documents=docs[600:700])

    db.create_collection("empty", dim=4)
    for name in db.list_collections():  # load the filter columns (they get a checkpoint)
        db.get_collection(name).count(where={"group": 1})
    return random_vectors(6, DIM, seed=3)


def _answers(db, Q):
    """Everything a user can ask each collection, as plain data."""
    out = {}
    for name in db.list_collections():
        col = db.get_collection(name)
        recs = col.get(include=("metadata", "document", "vector"))
        res = {"count": col.count(), "count_where": col.count(where={"group": 2}),
               "get": [(r.id, r.metadata, r.document, r.vector.tolist()) for r in recs]}
        if col.dim == DIM:
            for key, kwargs in {"vector": {}, "filtered": {"where": {"even": True}}}.items():
                hits = col.query(Q, k=10, **kwargs)
                res[key] = [(h.ids.tolist(), h.distances.tolist()) for h in hits]
            if col.text_index is not None and col.count():
                kw = col.query(text="alpha omega", k=10)
                hy = col.query(Q[0], text="beta gamma", k=10)
                res["keyword"] = (kw.ids.tolist(), kw.distances.tolist())
                res["hybrid"] = (hy.ids.tolist(), [h.score for h in hy])
        out[name] = res
    return out


def _listing(folder):
    return sorted(os.listdir(folder))


def _restore_fails(archive, dest, error=vecdb.ArchiveError, match=None):
    """restore() raises error, and leaves the destination's folder as it was."""
    parent = os.path.dirname(dest)
    before = _listing(parent)
    with pytest.raises(error, match=match) as info:
        vecdb.restore(archive, dest)
    assert _listing(parent) == before  # no dest_dir, no staging folder
    return str(info.value)


# -- round trips ------------------------------------------------------------------------------

def test_quiescent_round_trip_answers_identically(db, db_path, tmp_path, monkeypatch):
    from vecdb.io import backup as backup_mod
    monkeypatch.setattr(backup_mod, "RESTORE_BATCH", 3)  # collections open at a time
    Q = _build_db(db)
    want = _answers(db, Q)
    archive = tmp_path / "db.vdb.tar.zst"
    seen = []
    manifest = db.backup(archive, level=5, progress=lambda done, total: seen.append((done, total)))
    assert manifest["magic"] == "vecdb-backup" and manifest["format_version"] == 1
    assert manifest["archive_bytes"] == os.path.getsize(archive)
    assert seen[-1] == (manifest["raw_bytes"], manifest["raw_bytes"])
    assert not os.path.exists(str(archive) + ".partial")
    by_name = {c["name"]: c for c in manifest["collections"]}
    assert sorted(by_name) == db.list_collections()
    for name, c in by_name.items():
        stats = db.get_collection(name).stats()
        assert (c["rows"], c["live"], c["generation"]) == (stats["rows"], stats["live"],
                                                           stats["generation"])
    assert by_name["vacuumed"]["generation"] == 1 and by_name["vacuumed"]["folder"].endswith(".v1")
    members = {m["path"]: m for m in manifest["members"]}
    vac = by_name["vacuumed"]
    seg = members[f"{vac['folder']}/vectors.0.f32"]
    assert seg["size"] == 4096 + vac["rows"] * DIM * 4  # cut at the watermark

    dest = tmp_path / "restored"
    dest.mkdir()  # an existing empty directory is fine
    done = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # nothing is rebuilt
        report = vecdb.restore(archive, dest, progress=lambda d, t: done.append((d, t)))
    assert done[-1] == (os.path.getsize(archive), os.path.getsize(archive))
    assert {r["name"]: (r["replayed_rows"], r["rebuilt"]) for r in report["restored"]} == {
        "hnsw_str": (0, False), "flat_int": (0, False), "ivfpq": (None, False),
        "hnsw_sq8": (0, False), "hnsw_pq": (0, False), "vacuumed": (0, False),
        "empty": (0, False)}
    assert not [n for n in os.listdir(tmp_path) if ".restore-" in n]

    for path in ("hnsw.graph", "codes.vdbq", "ivfpq.vdbq", "filters.cols"):
        for m in members:
            if m.endswith("/" + path):  # the checkpoints came back bit for bit (no tail)
                with open(dest / m, "rb") as a, open(db_path / m, "rb") as b:
                    assert a.read() == b.read(), m
    names = {m.rsplit("/", 1)[-1] for m in members}
    assert {"hnsw.graph", "codes.vdbq", "ivfpq.vdbq", "filters.cols"} <= names

    with vecdb.open(dest) as copy:
        got = _answers(copy, Q)
        assert got == want
        stats = copy.get_collection("hnsw_str").stats()
        assert stats["index"]["rebuilds"] == 0 and stats["generation"] == 0
        assert copy.get_collection("vacuumed").stats()["generation"] == 1
        copy.get_collection("hnsw_str").add(ids=["new"], vectors=np.ones(DIM))  # writable
        assert copy.get_collection("hnsw_str").count() == want["hnsw_str"]["count"] + 1


def test_backup_while_another_thread_adds_holds_one_committed_watermark(db, tmp_path):
    batch, max_batches = 50, 400
    X = random_vectors(batch * max_batches, DIM, seed=5)
    col = db.create_collection("live", dim=DIM, metric="l2")
    committed = [0]  # batches committed so far
    for b in range(8):
        col.add(ids=list(range(b * batch, (b + 1) * batch)), vectors=X[b * batch:(b + 1) * batch],
                metadatas=[{"batch": b}] * batch)
        committed[0] = b + 1
    stop, errors = threading.Event(), []

    def writer():
        try:
            for b in range(8, max_batches):
                if stop.is_set():
                    return
                col.add(ids=list(range(b * batch, (b + 1) * batch)),
                        vectors=X[b * batch:(b + 1) * batch], metadatas=[{"batch": b}] * batch)
                committed[0] = b + 1
        except Exception as e:  # noqa: BLE001 - re-raised on the test's thread
            errors.append(e)

    overlapped = []

    def progress(done, total):
        if not overlapped:  # the backup is streaming: the writer must go on meanwhile
            start = committed[0]
            for _ in range(2000):
                if committed[0] >= start + 2 or committed[0] == max_batches:
                    break
                threading.Event().wait(0.005)
            overlapped.append(committed[0] - start)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        threading.Event().wait(0.05)
        manifest = db.backup(tmp_path / "live.vdb.tar.zst", progress=progress)
    finally:
        stop.set()
        thread.join(60)
    assert not errors and overlapped and overlapped[0] >= 2
    rows = manifest["collections"][0]["rows"]
    final = col.count()
    assert rows % batch == 0 and 8 * batch <= rows < final  # whole batches, not all of them

    report = vecdb.restore(tmp_path / "live.vdb.tar.zst", tmp_path / "restored")
    assert report["restored"][0]["rebuilt"] is False
    with vecdb.open(tmp_path / "restored") as copy:
        live = copy.get_collection("live")
        assert live.count() == rows == manifest["collections"][0]["live"]
        assert sorted(r.id for r in live.get(include=())) == list(range(rows))
        assert live.count(where={"batch": rows // batch - 1}) == batch
        assert live.count(where={"batch": rows // batch}) == 0
        Q = random_vectors(5, DIM, seed=6)
        want_rows, want_dist = exact_topk(X[:rows], Q, 10, "l2")
        for q, res, wr, wd in zip(Q, live.query(Q, k=10, ef=rows), want_rows, want_dist):
            assert res.ids.tolist() == wr.tolist()
            np.testing.assert_allclose(res.distances, wd, rtol=1e-4, atol=1e-3)


def test_readonly_backup_replays_the_tail_past_the_graph_checkpoint(db, db_path, tmp_path):
    X = random_vectors(1500, DIM, seed=7)
    col = db.create_collection("c", dim=DIM, metric="l2")
    col.add(ids=list(range(1200)), vectors=X[:1200], metadatas=[{"i": i} for i in range(1200)])
    col.count(where={"i": {"$lt": 10}})
    col.flush()  # graph and filter checkpoints at 1200 rows
    col.add(ids=list(range(1200, 1500)), vectors=X[1200:],
            metadatas=[{"i": i} for i in range(1200, 1500)])  # an unsaved tail of 300
    assert col.stats()["index"]["checkpoint_nodes"] == 1200

    with vecdb.open(db_path, readonly=True) as ro:  # what `vecdb backup DIR` does
        manifest = ro.backup(tmp_path / "ro.vdb.tar.zst")
    assert manifest["collections"][0]["rows"] == 1500
    assert col.stats()["index"]["checkpoint_nodes"] == 1200  # the reader wrote nothing

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = vecdb.restore(tmp_path / "ro.vdb.tar.zst", tmp_path / "restored")
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert report["restored"] == [{"name": "c", "rows": 1500, "live": 1500,
                                   "replayed_rows": 300, "rebuilt": False}]
    Q = random_vectors(5, DIM, seed=8)
    with vecdb.open(tmp_path / "restored") as copy:
        restored = copy.get_collection("c")
        stats = restored.stats()["index"]
        assert stats["checkpoint_nodes"] == 1500 and stats["rebuilds"] == 0  # saved on close
        assert restored.count(where={"i": {"$gte": 1190}}) == 310
        want_rows, _ = exact_topk(X, Q, 10, "l2")
        for res, wr in zip(restored.query(Q, k=10, ef=1500), want_rows):
            assert res.ids.tolist() == wr.tolist()
        mine = col.query(Q, k=10, ef=1500)
        assert [r.ids.tolist() for r in restored.query(Q, k=10, ef=1500)] == \
            [r.ids.tolist() for r in mine]


def test_database_stays_writable_while_a_backup_runs(db, tmp_path):
    col = db.create_collection("c", dim=DIM, metric="l2")
    col.add(ids=list(range(500)), vectors=random_vectors(500, DIM, seed=9))
    during = []

    def progress(done, total):
        if during:
            return
        t = threading.Thread(target=lambda: col.add(ids=["late"], vectors=np.ones(DIM)))
        t.start()
        t.join(10)
        during.append(not t.is_alive() and col.count() == 501)

    manifest = db.backup(tmp_path / "b.vdb.tar.zst", progress=progress)
    assert during == [True]  # the write completed while the backup was running
    assert manifest["collections"][0]["live"] == 500
    vecdb.restore(tmp_path / "b.vdb.tar.zst", tmp_path / "r")
    with vecdb.open(tmp_path / "r") as copy:
        assert copy.get_collection("c").get(ids=["late"]) == []
        assert copy.get_collection("c").count() == 500


# -- damaged and forged archives --------------------------------------------------------------

@pytest.fixture
def archive(db, tmp_path):
    col = db.create_collection("c", dim=DIM, metric="l2")
    col.add(ids=list(range(400)), vectors=random_vectors(400, DIM, seed=10),
            documents=_docs(400, 11))
    path = tmp_path / "a.vdb.tar.zst"
    db.backup(path)
    return path


def _members(path):
    """[(TarInfo, bytes)] of an archive, in order."""
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()]


def _write(path, members):
    """An archive of the given (TarInfo or name, bytes), consistently compressed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if isinstance(info, str):
                info = tarfile.TarInfo(info)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(buf.getvalue()))


def test_flipped_byte_is_refused(archive, tmp_path):
    size = os.path.getsize(archive)
    for offset in (size // 3, size // 2):
        data = archive.read_bytes()
        flip_bytes(archive, offset, 1)
        _restore_fails(archive, tmp_path / "r")
        archive.write_bytes(data)
    vecdb.restore(archive, tmp_path / "r")  # the intact archive restores


@pytest.mark.parametrize("cut", [0, 7, 100, 0.25, 0.5, 0.9, -200, -5, -1])
def test_truncated_archive_is_refused(archive, tmp_path, cut):
    data = archive.read_bytes()
    keep = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data) + cut)
    archive.write_bytes(data[:keep])
    _restore_fails(archive, tmp_path / "r")


def test_altered_member_recompressed_is_caught_by_its_sha256(archive, tmp_path):
    members = _members(archive)
    index = next(i for i, (m, _) in enumerate(members) if m.name.endswith("vectors.0.f32"))
    info, data = members[index]
    forged = bytearray(data)
    forged[4096 + 10] ^= 0x01  # a valid segment still (header intact), one value changed
    members[index] = (info, bytes(forged))
    _write(archive, members)
    message = _restore_fails(archive, tmp_path / "r", match="sha256 mismatch")
    assert info.name in message and str(archive) in message


def test_a_damaged_graph_checkpoint_in_a_sound_archive_is_rebuilt_at_restore(archive, tmp_path):
    """The archive is intact, but the graph checkpoint it carries was damaged on the source
    disk: restore notices (body checksum) and rebuilds the graph then, with a warning."""
    import hashlib
    members = _members(archive)
    index = next(i for i, (m, _) in enumerate(members) if m.name.endswith("hnsw.graph"))
    info, data = members[index]
    forged = bytearray(data)
    forged[len(forged) // 2] ^= 0xFF
    members[index] = (info, bytes(forged))
    manifest = json.loads(members[-1][1])
    for entry in manifest["members"]:
        if entry["path"] == info.name:
            entry["sha256"] = hashlib.sha256(forged).hexdigest()
    members[-1] = (members[-1][0], json.dumps(manifest).encode())
    _write(archive, members)
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        report = vecdb.restore(archive, tmp_path / "r")
    assert report["restored"][0]["rebuilt"] is True
    with vecdb.open(tmp_path / "r") as copy:
        col = copy.get_collection("c")
        assert col.count() == 400 and col.stats()["index"]["checkpoint_nodes"] == 400
        assert col.query(col.get(ids=[5], include=("vector",))[0].vector, k=1).ids[0] == 5


def test_missing_unlisted_and_duplicate_members_are_refused(archive, tmp_path):
    members = _members(archive)
    seg = next(i for i, (m, _) in enumerate(members) if m.name.endswith("vectors.0.f32"))
    _write(archive, members[:seg] + members[seg + 1:])
    _restore_fails(archive, tmp_path / "r", match="missing")
    extra = (members[seg][0].name.replace("vectors.0", "vectors.1"), members[seg][1])
    _write(archive, members[:-1] + [extra, members[-1]])
    _restore_fails(archive, tmp_path / "r", match="not listed")
    _write(archive, members[:seg + 1] + [members[seg]] + members[seg + 1:])
    _restore_fails(archive, tmp_path / "r", match="twice")
    _write(archive, members + [("data.mdb", b"late")])
    _restore_fails(archive, tmp_path / "r", match="must be last")


def test_not_a_vecdb_backup_is_refused(tmp_path):
    plain = tmp_path / "plain.tar.zst"
    _write(plain, [("hello.txt", b"hello")])
    assert "not a vecdb backup" in _restore_fails(plain, tmp_path / "r")
    junk = tmp_path / "junk.vdb.tar.zst"
    junk.write_bytes(os.urandom(5000))
    _restore_fails(junk, tmp_path / "r", match="zstd")
    empty = tmp_path / "empty.vdb.tar.zst"
    empty.write_bytes(b"")
    _restore_fails(empty, tmp_path / "r")
    twice = tmp_path / "twice.vdb.tar.zst"
    _write(twice, [("hello.txt", b"hello")])
    twice.write_bytes(twice.read_bytes() * 2)
    _restore_fails(twice, tmp_path / "r")


def test_unsafe_members_and_newer_versions_are_refused(tmp_path):
    header = archive_mod.header_bytes({})
    path = tmp_path / "evil.vdb.tar.zst"
    for name in ("../evil.txt", "/tmp/evil.txt", "collections/../../evil.txt", "LOCK"):
        _write(path, [("VECDB_BACKUP", header), (name, b"x")])
        _restore_fails(path, tmp_path / "r", match="unexpected member")
    link = tarfile.TarInfo("data.mdb")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    _write(path, [("VECDB_BACKUP", header), (link, b"")])
    _restore_fails(path, tmp_path / "r", match="not a regular file")
    newer = json.dumps({"magic": "vecdb-backup", "format_version": 2}).encode()
    _write(path, [("VECDB_BACKUP", newer)])
    _restore_fails(path, tmp_path / "r", match="format version 2 is newer")
    assert not os.path.exists(tmp_path.parent / "evil.txt")


def test_restore_refuses_a_non_empty_or_bad_destination(archive, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(vecdb.InvalidArgumentError, match="dest_dir"):
        vecdb.restore(archive, full)
    assert _listing(full) == ["keep.txt"] and not [n for n in os.listdir(tmp_path)
                                                     if ".restore-" in n]
    with pytest.raises(vecdb.InvalidArgumentError, match="dest_dir"):
        vecdb.restore(archive, full / "keep.txt")
    with pytest.raises(vecdb.InvalidArgumentError, match="dest_dir"):
        vecdb.restore(archive, tmp_path / "no" / "such" / "dir")
    with pytest.raises(vecdb.InvalidArgumentError, match="archive"):
        vecdb.restore(tmp_path / "missing.vdb.tar.zst", tmp_path / "r")
    with pytest.raises(vecdb.InvalidArgumentError, match="progress"):
        vecdb.restore(archive, tmp_path / "r", progress="yes")
    assert not os.path.exists(tmp_path / "r")


def test_backup_argument_checks_write_nothing(db, tmp_path):
    db.create_collection("c", dim=4).add(ids=[1], vectors=[[1, 2, 3, 4]])
    before = _listing(tmp_path)
    for kwargs, name in (({"level": 0}, "level"), ({"level": True}, "level"),
                         ({"level": 23}, "level"), ({"progress": 3}, "progress")):
        with pytest.raises(vecdb.InvalidArgumentError, match=name):
            db.backup(tmp_path / "x.vdb.tar.zst", **kwargs)
    with pytest.raises(vecdb.InvalidArgumentError, match="dest"):
        db.backup(tmp_path)
    with pytest.raises(vecdb.InvalidArgumentError, match="dest"):
        db.backup(tmp_path / "nope" / "x.vdb.tar.zst")
    with pytest.raises(vecdb.InvalidArgumentError, match="dest"):
        db.backup(42)
    assert _listing(tmp_path) == before
    db.close()
    with pytest.raises(vecdb.DatabaseClosedError):
        db.backup(tmp_path / "x.vdb.tar.zst")


def test_backups_under_concurrent_vacuums_stay_consistent(db, tmp_path):
    X = random_vectors(1200, DIM, seed=12)
    col = db.create_collection("c", dim=DIM, metric="l2")
    col.add(ids=list(range(600)), vectors=X[:600])
    stop, errors = threading.Event(), []

    def churn():
        rng = np.random.default_rng(13)
        try:
            while not stop.is_set():
                ids = rng.choice(600, size=60, replace=False).tolist()
                col.upsert(ids=ids, vectors=X[600 + rng.integers(0, 600, size=60)])
                col.vacuum()
        except Exception as e:  # noqa: BLE001 - re-raised on the test's thread
            errors.append(e)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        manifests = [db.backup(tmp_path / f"b{i}.vdb.tar.zst") for i in range(3)]
    finally:
        stop.set()
        thread.join(60)
    assert not errors
    for i, manifest in enumerate(manifests):
        vecdb.restore(tmp_path / f"b{i}.vdb.tar.zst", tmp_path / f"r{i}")
        with vecdb.open(tmp_path / f"r{i}") as copy:
            c = copy.get_collection("c")
            assert c.count() == manifest["collections"][0]["live"] == 600
            assert sorted(r.id for r in c.get(include=())) == list(range(600))
            vectors = np.stack([r.vector for r in c.get(include=("vector",))])
            hits = c.query(vectors[:5], k=1)
            assert [h.distances[0] for h in hits] == [0.0] * 5


def test_a_vacuum_during_the_snapshot_makes_it_start_over(db, tmp_path, monkeypatch):
    """A vacuum committing between the read of the generations and the snapshot transaction
    (a real vacuum, injected at that point) makes the snapshot start over; a database whose
    generations never hold still gives up with a clear error and leaves nothing behind."""
    from vecdb.io import backup as backup_mod
    col = db.create_collection("c", dim=DIM, metric="l2")
    col.add(ids=list(range(700)), vectors=random_vectors(700, DIM, seed=14))
    col.delete(ids=list(range(0, 700, 2)))
    real, calls = backup_mod._open_checkpoints, []

    def open_checkpoints(database, info, gen):
        calls.append(gen)
        if len(calls) == 1:
            col.vacuum()  # commits generation 1 and deletes generation 0's folder
        return real(database, info, gen)

    monkeypatch.setattr(backup_mod, "_open_checkpoints", open_checkpoints)
    manifest = db.backup(tmp_path / "b.vdb.tar.zst")
    assert calls == [0, 1]
    entry = manifest["collections"][0]
    assert (entry["generation"], entry["rows"], entry["live"]) == (1, 350, 350)
    vecdb.restore(tmp_path / "b.vdb.tar.zst", tmp_path / "r")
    with vecdb.open(tmp_path / "r") as copy:
        assert sorted(r.id for r in copy.get_collection("c").get(include=())) == \
            list(range(1, 700, 2))

    def always_vacuum(database, info, gen):
        col.vacuum()
        return real(database, info, gen)

    monkeypatch.setattr(backup_mod, "_open_checkpoints", always_vacuum)
    before = _listing(tmp_path)
    with pytest.raises(vecdb.DatabaseLockedError, match="kept changing"):
        db.backup(tmp_path / "c.vdb.tar.zst")
    assert _listing(tmp_path) == before


def test_a_missing_segment_is_reported_not_retried(db, db_path, tmp_path):
    col = db.create_collection("c", dim=DIM, metric="l2")
    col.add(ids=list(range(100)), vectors=random_vectors(100, DIM, seed=15))
    uuid = db.backup(tmp_path / "ok.vdb.tar.zst")["collections"][0]["uuid"]
    os.unlink(db_path / "collections" / uuid / "ids.0.i64")
    before = _listing(tmp_path)
    with pytest.raises(vecdb.CorruptionError, match=r"ids\.0\.i64.* is missing"):
        db.backup(tmp_path / "bad.vdb.tar.zst")
    assert _listing(tmp_path) == before
