"""Operations of vecdb: online backup and verified restore of a large collection, and import
from Parquet and JSONL, against the plain tools a user would otherwise reach for.

    python benchmarks/operations.py                 # 1,000,000 x 384 (pypi-minilm-100k x 10)
    python benchmarks/operations.py --quick         # 100,000 rows, 20,000 imported
    python benchmarks/operations.py --dataset none  # synthetic rows and payloads

The collection: the dataset's 100,000 MiniLM rows repeated (--n / 100,000) times, each copy
with a little gaussian noise (sigma 0.02, then unit length) so no two rows are equal, cosine,
HNSW (default parameters), with the dataset's metadata (name, month, rank) and documents
(the summaries), added in batches of 10,000. It reports:
  - build: add time of the source collection (context for the rest);
  - backup: ``db.backup(archive)`` of the open database (its LMDB snapshot, the segments up
    to the watermark, the graph and filter checkpoints, sha256 of every member, zstd level
    3), in MB/s of the bytes it packs (the manifest's raw bytes), and the archive size as a
    share of those; peer in the same run: ``tar -c DIR | zstd -3 -T2`` of the same (closed)
    directory, the offline copy a user would script (it reads the segment files' unused
    preallocated tails too: its MB/s is over the directory's allocated bytes);
  - restore: ``vecdb.restore(archive, dir)`` (verifies every sha256, replays no tail since
    the backup checkpoints first, opens the result once) in MB/s of the same raw bytes;
    peer: ``zstd -d -T2 | tar -x`` of the peer archive; then the restored collection's
    count and a few queries are checked against the source;
  - import: ``col.export`` of the first --import-rows rows to Parquet and to JSONL, then
    ``db.import_`` of each file into a new Flat collection, with the BM25 text index (the
    default) and without (so the figure is the import pipeline: parsing, validation, LMDB
    and segment writes, postings; an HNSW collection adds its build rate, shown above),
    rows/s and MB/s of file; peer: lancedb
    ``create_table`` streaming the same Parquet file (pyarrow batches) and the same JSONL
    file (pyarrow.json streaming reader, vectors cast to fixed-size lists).
Prints markdown tables, writes JSON (benchmarks/results/operations.json). The full run needs
about 12 GB of free disk in the temp folder (--tmp) and takes about 20 minutes on 2 cores,
most of it the HNSW build; --quick about two.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # measure this tree's vecdb, not another installed copy
import vecdb  # noqa: E402
from common import (Targets, git_state, normalized, open_dataset, other_load,  # noqa: E402
                    version, write_json)

DEFAULT_DATASET = os.path.join(ROOT, "..", "shared", "datasets", "pypi-minilm-100k")
ADD_BATCH = 10_000
NOISE = 0.02
SEED = 0
MB = 1e6


def load(d: Optional[str], n: int) -> Dict[str, Any]:
    """n rows (copies of the dataset with noise, or synthetic), their metadata and documents."""
    rng = np.random.default_rng(SEED)
    opened = open_dataset(None if d in (None, "", "none") else d)
    if opened is None:
        dim = 384
        base = normalized(rng.standard_normal((min(n, 100_000), dim)).astype(np.float32))
        words = ["vector", "search", "python", "library", "fast", "client", "data", "tool",
                 "async", "parser", "web", "api", "json", "model", "graph", "cache"]
        metas = [{"name": f"pkg-{i}", "month": int(200801 + (i % 200)), "rank": -1}
                 for i in range(len(base))]
        summaries = [" ".join(rng.choice(words, size=8)) for _ in range(len(base))]
        name = "synthetic"
    else:
        name, b, _ = opened
        base = normalized(np.asarray(b, dtype=np.float32))
        metas, summaries = [], []
        with open(os.path.join(d, "meta.jsonl")) as f:
            for line in f:
                o = json.loads(line)
                metas.append({"name": o["name"], "month": o["month"], "rank": o["rank"]})
                summaries.append(o["summary"] or "")
    return {"name": name, "base": base, "metas": metas, "summaries": summaries, "n": n,
            "rng": rng}


def batch(data: Dict[str, Any], start: int, stop: int):
    """Rows [start, stop) of the tiled collection: ids, vectors, metadatas, documents."""
    base, nb = data["base"], len(data["base"])
    rows = np.arange(start, stop)
    copy, src = rows // nb, rows % nb
    X = base[src]
    noisy = copy > 0
    if noisy.any():
        rng = np.random.default_rng(SEED + start)
        X = X.copy()
        X[noisy] += rng.standard_normal((int(noisy.sum()), X.shape[1])).astype(np.float32) * NOISE
        X = normalized(X)
    metas = [dict(data["metas"][s], copy=int(c)) for s, c in zip(src.tolist(), copy.tolist())]
    docs = [data["summaries"][s] for s in src.tolist()]
    return rows.tolist(), X, metas, docs


def build(src_dir: str, data: Dict[str, Any], n: int, out: Dict[str, Any]):
    """The source database (left open) and its collection "docs" of n rows, timed."""
    db = vecdb.open(src_dir, durability="normal")
    col = db.create_collection("docs", dim=data["base"].shape[1], metric="cosine")
    t = time.perf_counter()
    for s in range(0, n, ADD_BATCH):
        ids, X, metas, docs = batch(data, s, min(n, s + ADD_BATCH))
        col.add(ids, X, metadatas=metas, documents=docs)
        if s and s % 100_000 == 0:
            print(f"  {s:,} rows, {time.perf_counter() - t:.0f} s", flush=True)
    col.count(where={"month": {"$gte": 202501}})  # builds the filter columns
    col.flush()
    build_s = time.perf_counter() - t
    out["build"] = {"seconds": build_s, "rows_per_s": n / build_s}
    print(f"build: {build_s:.0f} s ({n / build_s:,.0f} rows/s)", flush=True)
    return db, col


def dir_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.path.getsize(os.path.join(dirpath, f))
    return total


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def sh(cmd: str) -> None:
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)


def fmt(x: Optional[float], spec: str = ",.1f") -> str:
    return "-" if x is None else format(x, spec)


def table(head: List[str], rows: List[List[str]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def same_answers(a: Any, b: Any, Q: np.ndarray) -> bool:
    for q in Q:
        ra, rb = a.query(q, k=10, include=()), b.query(q, k=10, include=())
        if list(ra.ids) != list(rb.ids) or not np.array_equal(ra.distances, rb.distances):
            return False
    return True


def lance_import(tmp: str, path: str, fmt_: str, dim: int) -> Optional[float]:
    """Seconds lancedb takes to create a table streaming the file, or None without lancedb."""
    try:
        import lancedb
        import pyarrow as pa
        import pyarrow.json as pj
        import pyarrow.parquet as pq
    except ImportError:
        return None
    db = lancedb.connect(os.path.join(tmp, f"lance-{fmt_}"))
    vec_type = pa.list_(pa.float32(), dim)

    def batches():
        if fmt_ == "parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=ADD_BATCH)
            return
        reader = pj.open_json(path, read_options=pj.ReadOptions(block_size=16 << 20))
        for b in reader:
            cols = {name: b.column(name) for name in b.schema.names}
            cols["vector"] = cols["vector"].cast(pa.list_(pa.float32())).cast(vec_type)
            if "metadata" in cols:  # a struct of the keys: keep it as JSON text, as vecdb has it
                cols["metadata"] = pa.array([json.dumps(m) for m in cols["metadata"].to_pylist()])
            yield pa.RecordBatch.from_pydict(cols)

    t = time.perf_counter()
    it = batches()
    head = next(it)

    def everything():
        yield head
        yield from it

    db.create_table("t", data=pa.RecordBatchReader.from_batches(head.schema, everything()))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=DEFAULT_DATASET,
                    help="folder with base.f16.npy and meta.jsonl ('none': synthetic)")
    ap.add_argument("--quick", action="store_true", help="100,000 rows, 20,000 imported")
    ap.add_argument("--n", type=int, default=None, help="rows of the collection (1,000,000)")
    ap.add_argument("--import-rows", type=int, default=None,
                    help="rows exported and imported per format (200,000; quick 20,000)")
    ap.add_argument("--tmp", default=None, help="folder for the databases and files")
    ap.add_argument("--source", default=None,
                    help="keep the source database here and reuse it on the next run (its "
                         "build is then not timed); default: built in the temp folder")
    ap.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results",
                                                   "operations.json"))
    args = ap.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)
    n_imp = min(n, args.import_rows or (20_000 if args.quick else 200_000))
    t_start = time.perf_counter()
    loads: Dict[str, Optional[float]] = {"start": other_load()}
    data = load(args.dataset, n)
    dim = data["base"].shape[1]
    print(f"dataset {data['name']} tiled to {n:,} x {dim} (noise {NOISE}), cosine, HNSW; "
          f"vecdb {git_state()}", flush=True)
    tmp = tempfile.mkdtemp(prefix="vecdb-ops-", dir=args.tmp)
    out: Dict[str, Any] = {"n": n, "dim": dim, "dataset": data["name"], "commit": git_state(),
                           "import_rows": n_imp}
    try:
        src_dir = args.source or os.path.join(tmp, "src.vdb")
        if args.source and os.path.exists(os.path.join(src_dir, "data.mdb")):
            db = vecdb.open(src_dir, durability="normal")
            col = db.get_collection("docs")
            if col.count() != n:
                sys.exit(f"--source {src_dir} holds {col.count():,} rows, not {n:,}")
            print(f"reusing {src_dir} ({n:,} rows; its build is not timed)", flush=True)
        else:
            db, col = build(src_dir, data, n, out)
            loads["after build"] = other_load(0.5)

        # -- backup (online) and restore ----------------------------------------------------
        archive = os.path.join(tmp, "backup.vdb.tar.zst")
        manifest: Dict[str, Any] = {}

        def do_backup() -> None:
            manifest.update(db.backup(archive))

        backup_s = timed(do_backup)
        raw = int(manifest.get("raw_bytes") or sum(m["size"] for m in manifest["members"]))
        arch = os.path.getsize(archive)
        Q = data["base"][:: max(1, len(data["base"]) // 50)][:50]
        db.close()
        dir_size = dir_bytes(src_dir)
        peer_archive = os.path.join(tmp, "peer.tar.zst")
        peer_backup_s = timed(lambda: sh(f"tar -C {src_dir} -cf - . | zstd -q -3 -T2 -o "
                                         f"{peer_archive}"))
        peer_arch = os.path.getsize(peer_archive)

        dest = os.path.join(tmp, "restored.vdb")
        restore_s = timed(lambda: vecdb.restore(archive, dest))
        peer_dest = os.path.join(tmp, "peer-restored")
        os.makedirs(peer_dest)
        peer_restore_s = timed(lambda: sh(f"zstd -q -d -T2 -c {peer_archive} | tar -C "
                                          f"{peer_dest} -xf -"))
        shutil.rmtree(peer_dest, ignore_errors=True)
        with vecdb.open(src_dir, readonly=True) as a, vecdb.open(dest, readonly=True) as b:
            ca, cb = a.get_collection("docs"), b.get_collection("docs")
            restored_ok = ca.count() == cb.count() == n and same_answers(ca, cb, Q)
        shutil.rmtree(dest, ignore_errors=True)
        out["backup"] = {"seconds": backup_s, "raw_bytes": raw, "archive_bytes": arch,
                         "dir_bytes": dir_size, "mb_per_s": raw / MB / backup_s,
                         "archive_share": arch / raw, "peer_seconds": peer_backup_s,
                         "peer_archive_bytes": peer_arch,
                         "peer_mb_per_s": dir_size / MB / peer_backup_s}
        out["restore"] = {"seconds": restore_s, "mb_per_s": raw / MB / restore_s,
                          "peer_seconds": peer_restore_s,
                          "peer_mb_per_s": dir_size / MB / peer_restore_s,
                          "answers_equal": restored_ok}
        print()
        table(["operation", "engine", "seconds", "MB packed", "MB/s", "archive MB",
               "archive / packed"],
              [["backup (online)", "vecdb db.backup", fmt(backup_s), fmt(raw / MB),
                fmt(raw / MB / backup_s), fmt(arch / MB), fmt(arch / raw, ".3f")],
               ["backup (offline)", "tar + zstd -3 -T2", fmt(peer_backup_s), fmt(dir_size / MB),
                fmt(dir_size / MB / peer_backup_s), fmt(peer_arch / MB),
                fmt(peer_arch / dir_size, ".3f")],
               ["restore (verified)", "vecdb.restore", fmt(restore_s), fmt(raw / MB),
                fmt(raw / MB / restore_s), "-", "-"],
               ["restore", "zstd -d + tar -x", fmt(peer_restore_s), fmt(dir_size / MB),
                fmt(dir_size / MB / peer_restore_s), "-", "-"]])
        print(f"\nrestored collection: {n:,} rows, answers equal to the source's: {restored_ok}")
        print(f"backup MB/s vecdb / tar+zstd = {out['backup']['mb_per_s'] / out['backup']['peer_mb_per_s']:.2f}; "
              f"restore = {out['restore']['mb_per_s'] / out['restore']['peer_mb_per_s']:.2f}")
        loads["after backup"] = other_load(0.5)

        # -- import ------------------------------------------------------------------------
        imports: List[Dict[str, Any]] = []
        with vecdb.open(os.path.join(tmp, "imports.vdb"), durability="normal") as db:
            part = db.create_collection("part", dim=dim, metric="cosine", index=vecdb.Flat())
            for s in range(0, n_imp, ADD_BATCH):
                ids, X, metas, docs = batch(data, s, min(n_imp, s + ADD_BATCH))
                part.add(ids, X, metadatas=metas, documents=docs)
            for fmt_ in ("parquet", "jsonl"):
                path = os.path.join(tmp, f"part.{fmt_}")
                export_s = timed(lambda path=path: part.export(path))
                size = os.path.getsize(path)
                lance_s = lance_import(tmp, path, fmt_, dim)
                for text in (True, False):
                    name = f"imported_{fmt_}_{text}"
                    import_s = timed(lambda name=name, path=path, text=text: db.import_(
                        name, path, index=vecdb.Flat(), text_index=text))
                    got = db.get_collection(name).count()
                    imports.append({
                        "format": fmt_, "text_index": text, "rows": got, "file_bytes": size,
                        "export_s": export_s, "import_s": import_s, "rows_per_s": got / import_s,
                        "mb_per_s": size / MB / import_s, "lancedb_s": lance_s,
                        "lancedb_rows_per_s": None if lance_s is None else n_imp / lance_s})
                    db.drop_collection(name)
                os.remove(path)
        out["imports"] = imports
        print()
        table(["format", "text index", "rows", "file MB", "export s", "vecdb import s",
               "rows/s", "MB/s", "lancedb s", "lancedb rows/s", "vecdb / lancedb"],
              [[r["format"], "yes" if r["text_index"] else "no", f"{r['rows']:,}",
                fmt(r["file_bytes"] / MB), fmt(r["export_s"]),
                fmt(r["import_s"]), fmt(r["rows_per_s"], ",.0f"), fmt(r["mb_per_s"]),
                fmt(r["lancedb_s"]), fmt(r["lancedb_rows_per_s"], ",.0f"),
                "-" if r["lancedb_s"] is None else fmt(r["lancedb_s"] / r["import_s"], ".2f")]
               for r in imports])
        loads["end"] = other_load(0.5)

        targets = Targets()
        targets.check("restored database answers queries identically", restored_ok,
                      f"{n:,} rows, {len(Q)} queries")
        targets.check("every import round-trips all rows", all(r["rows"] == n_imp for r in imports),
                      ", ".join(f"{r['format']} {r['rows']:,}" for r in imports))
        out["targets"] = targets.checks
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["loads"] = loads
    out["versions"] = {"lancedb": version("lancedb"), "pyarrow": version("pyarrow"),
                       "zstd": subprocess.run(["zstd", "--version"], capture_output=True,
                                              text=True, check=False).stdout.strip()}
    out["total_s"] = time.perf_counter() - t_start
    print(f"\nouter load (cores busy by other processes): {loads}; total "
          f"{out['total_s'] / 60:.1f} min")
    write_json(args.json, out)


if __name__ == "__main__":
    main()
