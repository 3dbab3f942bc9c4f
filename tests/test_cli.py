"""The ``vecdb`` command line, run as ``python -m vecdb`` subprocesses on temporary databases:
every subcommand, the exit codes (0 ok / 1 error / 2 usage), ``--json`` documents that parse
and hold the right values, and errors that are one line without a traceback (unless
``--debug``).

Independent commands run concurrently (``run_all``) to keep the file fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import VECDB_ROOT, flip_bytes

import vecdb
from vecdb.cli import main
from vecdb.cli.output import fmt_bytes, table

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    p for p in (VECDB_ROOT, os.environ.get("PYTHONPATH")) if p))
DIM = 8
N = 300


def _start(args):
    return subprocess.Popen([sys.executable, "-m", "vecdb", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def cli(*args):
    """Runs ``python -m vecdb ARGS``: CompletedProcess with text stdout/stderr."""
    return _finish(_start(args))


def run_all(*commands):
    """Runs several ``vecdb`` commands at once (they must not depend on each other)."""
    return [_finish(p) for p in [_start(c) for c in commands]]


def inproc(capsys, *args):
    """Runs ``main(ARGS)`` in this process (cheaper than a subprocess, for the variants of a
    command that has its own subprocess test): a CompletedProcess like cli()'s."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def ok_json(result):
    """The one JSON document on stdout of a successful run."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_error(result, code, *fragments):
    """Exit code, and a one-line error on stderr holding the fragments, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    last = lines[-1]
    assert "error" in last
    if code == 1:
        assert len(lines) == 1 and last.startswith("vecdb: error: "), result.stderr
    for fragment in fragments:
        assert fragment in last, (fragment, last)
    return last


def items(n=N, dim=DIM, seed=0):
    """Vectors, ids, metadata and documents of the test collections."""
    X = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    ids = [f"d{i}" for i in range(n)]
    metas = [{"year": 2000 + i % 5, "even": i % 2 == 0} for i in range(n)]
    docs = [f"note {i} token{i} about {'cats' if i % 2 else 'dogs'}" for i in range(n)]
    return X, ids, metas, docs


@pytest.fixture(scope="module")
def docs_db(tmp_path_factory):
    """A database with collection "docs" (l2, N rows), built in-process and closed; tests
    must not write to it."""
    path = tmp_path_factory.mktemp("cli") / "docs.vdb"
    X, ids, metas, docs = items()
    with vecdb.open(path) as db:
        db.create_collection("docs", dim=DIM, metric="l2").add(
            ids=ids, vectors=X, metadatas=metas, documents=docs)
    return path, X


# -- in-process: the parser and the formatting --------------------------------------------


def test_main_in_process_exit_codes(capsys, tmp_path):
    assert main(["--version"]) == 0
    assert vecdb.__version__ in capsys.readouterr().out
    assert main(["ls"]) == 2
    assert "required: DIR" in capsys.readouterr().err
    assert main(["ls", str(tmp_path / "none"), "--json"]) == 1  # global flag after the command
    err = capsys.readouterr().err
    assert err.startswith("vecdb: error: path: no vecdb database") and err.count("\n") == 1
    assert not (tmp_path / "none").exists()


def test_table_and_numbers():
    text = table(["name", "rows", "size"], [["docs", 1234567, "1.5 MiB"], ["a", 5, "12 B"]])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "rows", "size"]
    assert lines[2].split() == ["docs", "1,234,567", "1.5", "MiB"]
    assert lines[3].endswith(" 12 B") and lines[3].index("5") == lines[2].index("7")
    assert len({len(line) for line in lines[1:]}) == 1  # numbers right-aligned to one width
    assert fmt_bytes(1536) == "1.5 KiB" and fmt_bytes(10) == "10 B"


# -- usage errors (exit 2) ---------------------------------------------------------------


def test_usage_errors_exit_2(docs_db, tmp_path, capsys):
    path, _ = docs_db
    fresh = tmp_path / "fresh.vdb"
    helped, bare, bogus, where = run_all(
        ["--help"], [], ["ls", path, "--bogus"],
        ["query", path, "docs", "--text", "x", "--where", "{bad"])
    neither, vector, both, flat_m, quant, demo = [inproc(capsys, *args) for args in (
        ["query", path, "docs"],
        ["query", path, "docs", "--vector", "[1,2", "-k", "3"],
        ["query", path, "docs", "--vector", "[1]", "--vector-file", "q.npy"],
        ["create", fresh, "c", "--dim", "8", "--index", "flat", "--M", "8"],
        ["create", fresh, "c", "--dim", "8", "--quantization", "opq"],
        ["demo", fresh, "--n", "0"])]
    assert helped.returncode == 0 and "import" in helped.stdout and "bench" in helped.stdout
    for r in (bare, bogus, where, neither, vector, both, flat_m, quant, demo):
        assert r.returncode == 2, (r.args, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == ""
    assert "required: COMMAND" in bare.stderr
    assert "unrecognized arguments: --bogus" in bogus.stderr
    assert_error(where, 2, "--where", "not valid JSON", "{bad")
    assert_error(neither, 2, "--vector-file", "--text")
    assert_error(vector, 2, "--vector", "[1,2")
    assert "not allowed with argument" in both.stderr
    assert_error(flat_m, 2, "--M", "--index flat")
    assert_error(quant, 2, "--quantization", "opq")
    assert "--n" in demo.stderr
    assert not fresh.exists()  # nothing was created by a rejected command


# -- create, ls, info --------------------------------------------------------------------


def test_create_ls_info(tmp_path, capsys):
    path = tmp_path / "new.vdb"
    made = cli("create", path, "docs", "--dim", "8", "--metric", "l2")
    assert made.returncode == 0 and "created collection 'docs'" in made.stdout
    flat = ok_json(cli("--json", "create", path, "flat", "--dim", "4", "--index", "flat",
                       "--no-text-index"))
    assert (flat["name"], flat["dim"], flat["index"]["type"], flat["text_index"]) == \
        ("flat", 4, "flat", None)
    pq, ivf, again, bad_m = [inproc(capsys, *args) for args in (
        ["create", path, "pq", "--dim", "8", "--quantization", "pq:4", "--M", "8",
         "--stopwords", "english"],
        ["create", path, "ivf", "--dim", "8", "--index", "ivfpq", "--nlist", "4", "--m", "2",
         "--metric", "ip"],
        ["create", path, "docs", "--dim", "8"],
        ["create", path, "bad", "--dim", "8", "--M", "1"])]
    assert pq.returncode == 0 and "pq:4" in pq.stdout
    assert ivf.returncode == 0 and "ivfpq(nlist=4, m=2)" in ivf.stdout
    assert_error(again, 1, "'docs' already exists")
    assert_error(bad_m, 1, "HNSW.m", "got 1")

    listed, info = run_all(["--json", "ls", path], ["info", path, "--json"])
    human_ls, human_info = inproc(capsys, "ls", path), inproc(capsys, "info", path)
    names = ok_json(listed)
    assert [c["name"] for c in names] == ["docs", "flat", "ivf", "pq"]
    assert {c["name"]: (c["dim"], c["metric"], c["index"], c["count"]) for c in names} == {
        "docs": (8, "l2", "hnsw", 0), "flat": (4, "cosine", "flat", 0),
        "ivf": (8, "ip", "ivfpq", 0), "pq": (8, "cosine", "hnsw", 0)}
    doc = ok_json(info)
    assert doc["path"] == str(path) and doc["format_version"] == 1 and doc["disk_bytes"] > 0
    by_name = {c["name"]: c for c in doc["collections"]}
    assert by_name["pq"]["quantization"] == {"type": "pq", "m": 4, "rescore": 10,
                                             "train_size": 20000}
    assert by_name["pq"]["index"]["m"] == 8 and by_name["pq"]["text_index"]["stopwords"] == \
        "english"
    assert by_name["ivf"]["index"]["nlist"] == 4
    assert human_ls.returncode == 0 and human_ls.stdout.splitlines()[0].split() == \
        ["name", "count", "dim", "metric", "index"]
    assert human_info.returncode == 0 and "format version  1" in human_info.stdout
    assert "pq:4" in human_info.stdout and "bm25(english)" in human_info.stdout

    with vecdb.open(path, readonly=True) as db:  # what the library sees
        assert db.get_collection("pq").quantization == vecdb.PQ(m=4)
        assert db.get_collection("pq").index == vecdb.HNSW(m=8)
        assert db.get_collection("flat").text_index is None


def test_create_rejected_leaves_no_database(tmp_path, capsys):
    fresh = tmp_path / "fresh.vdb"
    for args, message in ((["--quantization", "pq:3"], "m=3 must divide dim=8"),
                          (["--dim", "0"], "dim: expected"),
                          (["--index", "ivfpq", "--m", "3"], "m=3 must divide dim=8")):
        assert_error(inproc(capsys, "create", fresh, "c", "--dim", "8", *args), 1, message)
    assert_error(inproc(capsys, "create", fresh, "", "--dim", "4"), 1, "name")
    assert not fresh.exists()


# -- errors (exit 1) ---------------------------------------------------------------------


def test_errors_are_one_line_and_debug_shows_traceback(docs_db, tmp_path, capsys):
    path, _ = docs_db
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    unknown, missing, debug = run_all(
        ["query", path, "nope", "--text", "x"],
        ["ls", tmp_path / "missing.vdb"],
        ["--debug", "query", path, "nope", "--text", "x"])
    not_dir, bad_filter, bad_k, wrong_dim = [inproc(capsys, *args) for args in (
        ["info", a_file],
        ["query", path, "docs", "--text", "x", "--where", '{"year": {"$bad": 1}}'],
        ["query", path, "docs", "--text", "x", "-k", "0"],
        ["query", path, "docs", "--vector", "[1, 2, 3]"])]
    assert_error(unknown, 1, "no collection 'nope'")
    assert_error(missing, 1, "no vecdb database")
    assert_error(not_dir, 1, "not a directory")
    assert_error(bad_filter, 1, "$bad")
    assert_error(bad_k, 1, "k")
    assert_error(wrong_dim, 1, "dimension")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("vecdb: error: ")
    assert not (tmp_path / "missing.vdb").exists()


# -- query -------------------------------------------------------------------------------


def test_query_vector_text_where_hybrid(docs_db, tmp_path, capsys):
    path, X = docs_db
    np.save(tmp_path / "one.npy", X[17])
    np.save(tmp_path / "three.npy", X[[5, 6, 7]])
    (tmp_path / "q.json").write_text(json.dumps(X[42].tolist()))
    one, human = run_all(
        ["query", path, "docs", "--vector-file", tmp_path / "one.npy", "-k", "3", "--json"],
        ["query", path, "docs", "--vector-file", tmp_path / "one.npy", "-k", "3"])
    three, from_json, text, where, hybrid, human_hybrid = [inproc(capsys, *args) for args in (
        ["--json", "query", path, "docs", "--vector-file", tmp_path / "three.npy", "-k", "2",
         "--include", "metadata,vector"],
        ["--json", "query", path, "docs", "--vector-file", tmp_path / "q.json", "-k", "1",
         "--include", ""],
        ["--json", "query", path, "docs", "--text", "token123", "-k", "5"],
        ["--json", "query", path, "docs", "--vector", json.dumps(X[3].tolist()), "-k", "10",
         "--where", '{"year": 2001}', "--where-document", '{"$contains": "cats"}'],
        ["--json", "query", path, "docs", "--vector-file", tmp_path / "one.npy", "--text",
         "token17 dogs", "-k", "4", "--fusion", "weighted:0.5", "--explain"],
        ["query", path, "docs", "--vector-file", tmp_path / "three.npy", "--text", "cats",
         "-k", "2"])]
    doc = ok_json(one)
    assert doc["collection"] == "docs" and doc["k"] == 3 and len(doc["results"]) == 1
    hits = doc["results"][0]
    assert [h["rank"] for h in hits] == [1, 2, 3]
    assert hits[0]["id"] == "d17" and hits[0]["distance"] == pytest.approx(0, abs=1e-5)
    assert hits[0]["metadata"] == {"year": 2002, "even": False}
    assert hits[0]["document"] == "note 17 token17 about cats"
    assert hits[1]["distance"] >= hits[0]["distance"]
    truth = np.argsort(((X - X[17]) ** 2).sum(axis=1))[:3]
    assert [h["id"] for h in hits] == [f"d{i}" for i in truth]

    batch = ok_json(three)["results"]
    assert [r[0]["id"] for r in batch] == ["d5", "d6", "d7"]
    assert "document" not in batch[0][0] and batch[1][0]["vector"] == pytest.approx(
        X[6].tolist(), abs=1e-6)
    only = ok_json(from_json)["results"][0][0]
    assert only["id"] == "d42" and set(only) == {"rank", "id", "distance", "score"}
    assert ok_json(text)["results"][0][0]["id"] == "d123"
    filtered = ok_json(where)["results"][0]
    assert filtered and len(filtered) == 10
    assert all(h["metadata"]["year"] == 2001 and "cats" in h["document"] for h in filtered)
    fused = ok_json(hybrid)
    assert fused["results"][0][0]["id"] == "d17"
    assert set(fused["results"][0][0]["sides"]) == {"vector", "text"}
    assert fused["explain"][0]["plan"] == "hybrid"

    assert human.returncode == 0 and human.stderr == ""
    lines = human.stdout.splitlines()
    assert lines[0].split()[:4] == ["#", "id", "distance", "score"]
    assert lines[2].split()[:2] == ["1", "d17"] and "token17" in lines[2]
    assert human_hybrid.returncode == 0 and "query 2 of 3" in human_hybrid.stdout
    assert "found by" in human_hybrid.stdout


def test_read_commands_work_while_a_writer_holds_the_database(docs_db, tmp_path):
    path, _ = docs_db
    with vecdb.open(path):  # this process holds the writer lock
        ls, query, create, vacuum = run_all(
            ["ls", path, "--json"], ["query", path, "docs", "--text", "token5", "-k", "1"],
            ["create", path, "other", "--dim", "4", "--timeout", "0.2"],
            ["vacuum", path, "--timeout", "0"])
        assert ok_json(ls)[0]["count"] == N
        assert query.returncode == 0 and "d5" in query.stdout
        assert_error(create, 1)
        assert_error(vacuum, 1)
    with vecdb.open(path, readonly=True) as db:
        assert db.list_collections() == ["docs"]


# -- vacuum ------------------------------------------------------------------------------


def test_vacuum(tmp_path, capsys):
    path = tmp_path / "v.vdb"
    X, ids, _, _ = items(200)
    with vecdb.open(path, auto_vacuum=None) as db:
        a = db.create_collection("a", dim=DIM)
        a.add(ids=ids, vectors=X)
        a.delete(ids=ids[:50])
        db.create_collection("b", dim=DIM).add(ids=ids[:10], vectors=X[:10])
    unknown = cli("vacuum", path, "a", "nope")
    assert_error(unknown, 1, "'nope'")
    with vecdb.open(path, readonly=True) as db:  # nothing was vacuumed
        assert db.get_collection("a").stats()["tombstones"] == 50
    done = ok_json(cli("vacuum", path, "--json"))
    assert [(d["name"], d["rows_before"], d["rows_after"], d["removed"]) for d in done] == \
        [("a", 200, 150, 50), ("b", 10, 10, 0)]
    human, missing = inproc(capsys, "vacuum", path, "a"), inproc(capsys, "vacuum",
                                                                 tmp_path / "none.vdb")
    assert human.returncode == 0 and human.stdout.split("\n")[2].split()[:4] == \
        ["a", "150", "150", "0"]
    assert_error(missing, 1, "no vecdb database")
    assert not (tmp_path / "none.vdb").exists()
    info = {c["name"]: c for c in ok_json(inproc(capsys, "info", path, "--json"))["collections"]}
    assert info["a"]["generation"] == 2 and info["a"]["disk_bytes"] >= 150 * DIM * 4
    with vecdb.open(path, readonly=True) as db:
        a = db.get_collection("a")
        assert a.count() == 150 and a.stats()["tombstones"] == 0
        assert a.get(ids=["d60"])[0].id == "d60"


# -- import and export ---------------------------------------------------------------------


def write_jsonl(path, X, ids, metas, docs):
    with open(path, "w") as f:
        f.writelines(json.dumps({"id": ids[i], "vector": x.tolist(), "metadata": metas[i],
                                "document": docs[i]}) + "\n" for i, x in enumerate(X))


def test_import_export_roundtrip(tmp_path, capsys):
    path = tmp_path / "imp.vdb"
    X, ids, metas, docs = items(200, seed=1)
    src = tmp_path / "items.jsonl"
    write_jsonl(src, X, ids, metas, docs)
    doc = ok_json(cli("--json", "import", path, "docs", src, "--metric", "l2",
                      "--batch-size", "64"))
    assert (doc["created"], doc["written"], doc["count"]) == (True, 200, 200)
    again, missing_file, fresh_missing = [inproc(capsys, *args) for args in (
        ["import", path, "docs", src],
        ["import", path, "docs", tmp_path / "nope.jsonl"],
        ["import", tmp_path / "fresh.vdb", "x", tmp_path / "nope.jsonl"])]
    assert_error(again, 1, "already exists")
    assert_error(missing_file, 1, "nope.jsonl")
    assert_error(fresh_missing, 1, "nope.jsonl")
    assert not (tmp_path / "fresh.vdb").exists()
    conflict = inproc(capsys, "import", path, "docs", src, "--dim", "4")
    assert_error(conflict, 1, "--dim", "8")
    upsert = ok_json(inproc(capsys, "import", path, "docs", src, "--upsert", "--json"))
    assert (upsert["created"], upsert["written"], upsert["count"]) == (False, 200, 200)

    out = tmp_path / "out.jsonl"
    exported = cli("--json", "export", path, "docs", out, "--where", '{"year": {"$gte": 2003}}')
    exported_all = inproc(capsys, "export", path, "docs", tmp_path / "all.jsonl")
    want = sum(m["year"] >= 2003 for m in metas)
    assert ok_json(exported)["written"] == want
    assert exported_all.returncode == 0 and "exported 200 items" in exported_all.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == want and all(r["metadata"]["year"] >= 2003 for r in rows)
    first = rows[0]
    i = ids.index(first["id"])
    assert first["document"] == docs[i]
    np.testing.assert_allclose(first["vector"], X[i], rtol=1e-6)

    copy = ok_json(inproc(capsys, "--json", "import", path, "copy", out))  # JSONL holds no settings
    assert copy["count"] == want
    with vecdb.open(path, readonly=True) as db:
        assert db.get_collection("copy").metric == "cosine"
        assert db.get_collection("docs").get(ids=["d7"])[0].metadata == metas[7]


def test_parquet_export_carries_the_settings(docs_db, tmp_path):
    pytest.importorskip("pyarrow")
    path, X = docs_db
    out = tmp_path / "docs.parquet"
    assert ok_json(cli("export", path, "docs", out, "--json"))["written"] == N
    dest = tmp_path / "pq.vdb"
    doc = ok_json(cli("import", dest, "docs", out, "--json"))
    assert (doc["created"], doc["count"]) == (True, N)
    with vecdb.open(dest, readonly=True) as db:
        col = db.get_collection("docs")
        assert (col.metric, col.dim) == ("l2", DIM)
        assert col.query(X[11], k=1)[0].id == "d11"


def test_import_npy_with_ids_file(tmp_path):
    path = tmp_path / "npy.vdb"
    X = items(50)[0]
    np.save(tmp_path / "v.npy", X)
    (tmp_path / "ids.txt").write_text("\n".join(f"row-{i}" for i in range(50)) + "\n")
    doc = ok_json(cli("import", path, "vecs", tmp_path / "v.npy", "--ids-file",
                      tmp_path / "ids.txt", "--json", "--index", "flat"))
    assert doc["written"] == 50
    with vecdb.open(path, readonly=True) as db:
        col = db.get_collection("vecs")
        assert col.dim == DIM and isinstance(col.index, vecdb.Flat)
        assert col.query(X[9], k=1)[0].id == "row-9"


# -- backup, restore, check ----------------------------------------------------------------


def test_backup_restore_check(docs_db, tmp_path, capsys):
    path, X = docs_db
    archive = tmp_path / "b.vdb.tar.zst"
    manifest = ok_json(cli("backup", path, archive, "--json", "--level", "1"))
    assert [(c["name"], c["live"]) for c in manifest["collections"]] == [("docs", N)]
    assert archive.stat().st_size > 0

    dest = tmp_path / "restored.vdb"
    restored = ok_json(cli("--json", "restore", archive, dest))
    assert [c["name"] for c in restored["collections"]] == ["docs"]
    bad = tmp_path / "bad.vdb.tar.zst"
    bad.write_bytes(archive.read_bytes())
    flip_bytes(bad, bad.stat().st_size // 2, 64)
    check, corrupt = run_all(["check", dest, "--json"], ["restore", bad, tmp_path / "never.vdb"])
    listed, again, human_backup = [inproc(capsys, *args) for args in (
        ["ls", dest, "--json"], ["restore", archive, dest],
        ["backup", path, tmp_path / "h.vdb.tar.zst"])]
    assert ok_json(listed) == [{"name": "docs", "count": N, "dim": DIM, "metric": "l2",
                                "index": "hnsw"}]
    report = ok_json(check)
    assert report["ok"] is True and report["problems"] == []
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert_error(corrupt, 1, "bad.vdb.tar.zst")
    assert not (tmp_path / "never.vdb").exists()
    assert human_backup.returncode == 0 and "backed up 1 collection " in human_backup.stdout
    with vecdb.open(dest, readonly=True) as db:
        assert db.get_collection("docs").query(X[3], k=1)[0].id == "d3"


def test_check_finds_and_repairs_damage(tmp_path, capsys):
    path = tmp_path / "c.vdb"
    X, ids, metas, docs = items(200)
    with vecdb.open(path) as db:
        db.create_collection("docs", dim=DIM).add(ids=ids, vectors=X, metadatas=metas,
                                                  documents=docs)
    graphs = [os.path.join(root, f) for root, _, files in os.walk(path) for f in files
              if f == "hnsw.graph"]
    assert graphs
    flip_bytes(graphs[0], os.path.getsize(graphs[0]) // 2, 64)
    found, human = cli("check", path, "--json"), inproc(capsys, "check", path)
    report = json.loads(found.stdout)
    assert found.returncode == 1 and report["ok"] is False
    assert any(p["component"] == "graph" for p in report["problems"])
    assert human.returncode == 1 and "NOT OK" in human.stdout
    repaired = json.loads(cli("check", path, "--repair", "--json").stdout)
    assert repaired["ok"] is True and all(p["repaired"] for p in repaired["problems"])
    assert ok_json(inproc(capsys, "check", path, "--json"))["problems"] == []


# -- demo and bench ------------------------------------------------------------------------


def test_demo_and_bench(tmp_path, capsys):
    path = tmp_path / "demo.vdb"
    demo, bench = run_all(
        ["demo", path, "--n", "300", "--dim", "8"],
        ["bench", "--n", "600", "--dim", "8", "--queries", "10", "--k", "5", "--json"])
    demo_json, bench_human = [inproc(capsys, *args) for args in (
        ["demo", tmp_path / "demo2.vdb", "--n", "200", "--dim", "8", "--json"],
        ["bench", "--n", "400", "--dim", "4", "--queries", "5", "--metric", "l2"])]
    assert demo.returncode == 0 and "added 300 vectors of dim 8" in demo.stdout
    log = ok_json(demo_json)
    assert (log["n"], log["dim"], log["collection"]) == (200, 8, "demo")
    assert any("added 200 vectors" in line for line in log["log"])
    r = ok_json(bench)
    assert (r["n"], r["dim"], r["k"], r["queries"]) == (600, 8, 5, 10)
    assert r["recall_at_k"] == pytest.approx(1.0)  # exact scan at this size
    assert r["query_qps"] > 0 and r["numpy_qps"] > 0 and r["add_rows_per_s"] > 0
    assert r["speedup_vs_numpy"] == pytest.approx(r["batch_qps"] / r["numpy_qps"])
    assert bench_human.returncode == 0 and "recall@10" in bench_human.stdout
    assert "numpy brute force" in bench_human.stdout
    with vecdb.open(path, readonly=True) as db:
        assert db.get_collection("demo").count() == 300
