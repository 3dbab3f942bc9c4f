"""Hybrid search (BM25 keyword index + rank fusion) of vecdb: build cost, latency, relevance.

    python benchmarks/hybrid.py                 # ../shared/datasets/pypi-minilm-100k
    python benchmarks/hybrid.py --quick         # its first 20,000 rows, 100 queries
    python benchmarks/hybrid.py --dataset none  # synthetic names, summaries and vectors

One collection of the dataset's rows (HNSW, metric cosine, text_index=True): documents
"{name}: {summary}" (meta.jsonl), vectors the base rows (normalised), ids the row numbers,
added in batches of 5,000. It reports:
  - build: the HNSW collection's build time, and the add throughput of two Flat collections
    of the same rows and documents, one with text_index=False and one with text_index=True
    (the difference is the text index's cost: tokenizing, postings in the same LMDB
    transactions), with their size on disk;
  - latency, single thread (query(..., n_threads=1, include=()), one query per call, after
    warm-up queries on other rows; p50 / p95 ms) of, for --queries base rows picked at random
    with a fixed seed ("the named packages"):
      keyword   query(text=name)
      vector    query(v) where v is an UNRELATED query vector (queries.f16.npy row i % 1000,
                another package's summary): no text model is available here to embed the
                name, so the vector side "points elsewhere", as in real hybrid use where
                the embedding of a bare name is weak
      hybrid    query(v, text=name, fusion=vecdb.RRF(k=60) / vecdb.Weighted(alpha=0.5))
    and the same vector / hybrid modes with the named package's OWN summary embedding as v
    (the vector side points at it: hybrid should not hurt then);
    plus keyword latency of common-word queries ("python library", ...), the worst reported;
  - relevance: how often the named package (its row id) is in the top 10 (and first) in
    each mode above;
  - peer (optional): chromadb's where_document={"$contains": name} over the same documents
    in a PersistentClient collection (the embeddings passed explicitly), with the same
    unrelated query vector in query(n_results=10) and as get(limit=10); its p50 and how
    often the named package comes back, and the vecdb keyword / chroma latency ratio.
    Skipped with a note when chromadb does not import; each chroma mode stops after
    --cell-seconds once --min-queries queries are timed (a prefix of the same queries);
  - the issue's targets, PASS / FAIL: keyword p50 <= 5 ms at 100k documents; hybrid finds
    the named package in the top 10 at least as often as keyword-only and far more often
    (here: at least 50 points more) than vector-only.
The full run takes a few minutes on 2 cores (chroma's build is most of it), --quick about
one. Prints markdown tables, writes JSON (benchmarks/results/hybrid.json).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import string
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # measure this tree's vecdb, not another installed copy
import vecdb  # noqa: E402
from common import (dataset_rows, Targets, git_state, normalized, open_dataset,  # noqa: E402
                    other_load, settle, version, write_json)

K = 10
ADD_BATCH = 5_000
WARMUP = 20                # warm-up queries per mode, on rows not among the timed ones
COMMON_REPS = 30           # timed calls per common-word query (quick: 10)
SEED = 0
TARGET_KEYWORD_P50_MS = 5.0
FAR_MORE = 0.5             # "far more often than vector-only": at least 50 points more
DEFAULT_DATASET = os.path.join(ROOT, "..", "shared", "datasets", "pypi-minilm-100k")
COMMON_QUERIES = [
    "python",
    "python library",
    "a python client for the api",
    "django rest framework",
    "a simple tool for data",
    "machine learning",
    "command line interface",
    "python package for the analysis of data",
    "the",
    "library for working with json files in python",
]


# -- data ------------------------------------------------------------------------------------

def synthetic(n: int, nq: int, dim: int, seed: int = SEED) -> Dict[str, Any]:
    """Unit rows around 100 random centres; per row a unique name of made-up words and a
    summary of 4-14 words drawn from common English / Python words (Zipf-like) and made-up
    rare words. Text and vectors are independent."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(100, dim)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        lab = rng.integers(0, len(centers), size=m)
        return normalized(centers[lab] + rng.normal(size=(m, dim)).astype(np.float32))

    common = ("a the for and of to in with python library client api data tool simple "
              "django rest framework package command line interface machine learning "
              "json files working analysis based fast easy wrapper plugin server web "
              "utilities test module").split()
    letters = np.array(list(string.ascii_lowercase))
    rare = ["".join(rng.choice(letters, size=int(rng.integers(4, 10)))) for _ in range(20_000)]
    pc = 1.0 / np.arange(1, len(common) + 1)
    pc /= pc.sum()
    names: List[str] = []
    summaries: List[str] = []
    for i in range(n):
        parts = [rare[j] for j in rng.integers(0, len(rare), size=int(rng.integers(1, 3)))]
        names.append("-".join(parts) + np.base_repr(i, 36).lower())
        m = int(rng.integers(4, 15))
        words = [common[rng.choice(len(common), p=pc)] if rng.random() < 0.6
                 else rare[int(rng.integers(0, len(rare)))] for _ in range(m)]
        summaries.append(" ".join(words).capitalize())
    return {"name": f"synthetic-text-{n}x{dim}", "X": draw(n), "Q": draw(nq), "names": names,
            "summaries": summaries, "synthetic": True}


def load(args: argparse.Namespace) -> Dict[str, Any]:
    d = None if args.dataset in ("", "none") else args.dataset
    opened = open_dataset(d)
    if opened is None:
        return synthetic(args.n or 100_000, 1000, args.dim)
    name, X, Q, _ = dataset_rows(opened, args.n)
    n = len(X)
    names: List[str] = []
    summaries: List[str] = []
    with open(os.path.join(d, "meta.jsonl")) as f:
        for i, line in enumerate(f):
            if i >= n:
                break
            o = json.loads(line)
            names.append(o["name"])
            summaries.append(o["summary"] or "")
    return {"name": name, "X": X, "Q": Q, "names": names, "summaries": summaries,
            "synthetic": False}


def tokenizer() -> Callable[[str], List[str]]:
    """vecdb's own tokenizer (for document frequencies), or a plain word split."""
    try:
        from vecdb.query.tokenize import tokenize
        return tokenize
    except ImportError:
        return lambda s: re.findall(r"\w+", s.lower())


# -- measuring helpers -----------------------------------------------------------------------

def fmt(x: Optional[float], spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def table(head: Sequence[str]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")


def dir_bytes(path: str) -> int:
    total = 0
    for dp, _, files in os.walk(path):
        for f in files:
            try:  # allocated blocks: a memory map's file may be larger than what it holds
                total += os.stat(os.path.join(dp, f)).st_blocks * 512
            except OSError:
                pass
    return total


def timed(fn: Callable[[int], Sequence[Any]], n: int, warm_fn: Callable[[int], Any],
          n_warm: int, seconds: Optional[float] = None, min_queries: int = 20
          ) -> Tuple[np.ndarray, List[List[int]]]:
    """Warm-up calls warm_fn(j) for j < n_warm (other rows), then one timed call fn(i) per
    i < n (stopping after `seconds` once min_queries are timed, when given): (latencies ms,
    ids per call)."""
    for j in range(n_warm):
        warm_fn(j)
    settle()
    lat: List[float] = []
    found: List[List[int]] = []
    gc.disable()
    try:
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            ids = fn(i)
            lat.append(time.perf_counter() - t0)
            found.append([int(x) for x in ids])
            if seconds is not None and len(lat) >= min_queries and \
                    time.perf_counter() - start > seconds:
                break
    finally:
        gc.enable()
    return np.array(lat) * 1e3, found


def relevance(found: Sequence[Sequence[int]], targets: Sequence[int]) -> Dict[str, Any]:
    """Share of calls whose top 10 holds the target row, share with it first, mean rank
    (1-based) when found."""
    ranks = [f.index(t) + 1 if t in f[:K] else None for f, t in zip(found, targets)]
    hit = [r for r in ranks if r is not None]
    n = max(len(ranks), 1)
    return {"found_at_10": len(hit) / n, "found_at_1": sum(1 for r in hit if r == 1) / n,
            "mean_rank_found": float(np.mean(hit)) if hit else None, "queries": len(ranks),
            "missed": [i for i, r in enumerate(ranks) if r is None], "ranks": ranks}


def lat_stats(ms: np.ndarray) -> Dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "timed": int(len(ms))}


# -- builds ----------------------------------------------------------------------------------

def build(tmp: str, label: str, X: np.ndarray, docs: List[str], index: Any,
          text_index: bool) -> Tuple[Any, Any, Dict[str, Any]]:
    """A new database under tmp with one collection of all rows, added in batches of
    ADD_BATCH with their documents: (db, col, info)."""
    path = os.path.join(tmp, f"{label}.vdb")
    db = vecdb.open(path, durability="normal")
    col = db.create_collection(label, dim=X.shape[1], metric="cosine", index=index,
                               text_index=text_index)
    n = len(X)
    settle()
    t0 = time.perf_counter()
    for s in range(0, n, ADD_BATCH):
        e = min(s + ADD_BATCH, n)
        col.add(ids=list(range(s, e)), vectors=X[s:e], documents=docs[s:e])
    add_s = time.perf_counter() - t0
    return db, col, {"label": label, "index": type(index).__name__, "text_index": text_index,
                     "add_s": add_s, "rows_per_s": n / add_s,
                     "disk_bytes": dir_bytes(path), "path": path}


# -- chroma ----------------------------------------------------------------------------------

def run_chroma(tmp: str, X: np.ndarray, Q: np.ndarray, docs: List[str], picks: np.ndarray,
               warm: np.ndarray, names: List[str], args: argparse.Namespace
               ) -> Dict[str, Any]:
    """chromadb: build a PersistentClient collection of the same rows and documents, then
    where_document={"$contains": name} with query(unrelated vector, n_results=10) and with
    get(limit=10); each mode bounded by --cell-seconds."""
    import chromadb
    from chromadb.config import Settings
    out: Dict[str, Any] = {"version": version("chromadb")}
    path = os.path.join(tmp, "chroma")
    client = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
    col = client.create_collection(
        "hybrid", embedding_function=None,
        configuration={"hnsw": {"space": "cosine", "max_neighbors": 16,
                                "ef_construction": 200, "ef_search": 64}})
    batch = min(ADD_BATCH, client.get_max_batch_size())
    n = len(X)
    settle()
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        e = min(s + batch, n)
        col.add(ids=[str(i) for i in range(s, e)], embeddings=X[s:e], documents=docs[s:e])
    col.query(query_embeddings=Q[:1], n_results=K, include=[])  # loads the index
    out["build_s"] = time.perf_counter() - t0
    out["rows_per_s"] = n / out["build_s"]
    print(f"  chroma build {out['build_s']:.1f} s ({out['rows_per_s']:,.0f} rows/s)",
          flush=True)

    def q_contains(idx: np.ndarray) -> Callable[[int], List[int]]:
        def fn(i: int) -> List[int]:
            r = col.query(query_embeddings=Q[i % len(Q)][None, :], n_results=K,
                          where_document={"$contains": names[idx[i]]}, include=[])
            return [int(x) for x in r["ids"][0]]
        return fn

    def g_contains(idx: np.ndarray) -> Callable[[int], List[int]]:
        def fn(i: int) -> List[int]:
            r = col.get(where_document={"$contains": names[idx[i]]}, limit=K, include=[])
            return [int(x) for x in r["ids"]]
        return fn

    modes = {}
    for key, make in (("query_contains", q_contains), ("get_contains", g_contains)):
        ms, found = timed(make(picks), len(picks), make(warm), min(5, len(warm)),
                          seconds=args.cell_seconds, min_queries=args.min_queries)
        rel = relevance(found, picks[:len(found)].tolist())
        modes[key] = {**lat_stats(ms),
                      **{k: v for k, v in rel.items() if k not in ("missed", "ranks")}}
        print(f"  chroma {key}: p50 {modes[key]['p50_ms']:.3f} ms, p95 "
              f"{modes[key]['p95_ms']:.3f} ms, found@10 {rel['found_at_10']:.3f} "
              f"({len(found)} queries)", flush=True)
    out["modes"] = modes
    out["disk_bytes"] = dir_bytes(path)
    col = client = None
    gc.collect()
    return out


# -- main --------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=DEFAULT_DATASET,
                    help="folder with base.f16.npy, queries.f16.npy, meta.jsonl (default: "
                         "../shared/datasets/pypi-minilm-100k from the project root; 'none': "
                         "synthetic data)")
    ap.add_argument("--quick", action="store_true", help="the first 20,000 rows, 100 queries")
    ap.add_argument("--n", type=int, default=None, help="use the first n base rows")
    ap.add_argument("--dim", type=int, default=384, help="dimension of the synthetic data")
    ap.add_argument("--queries", type=int, default=None,
                    help="named packages (timed queries per mode; default 300, quick 100)")
    ap.add_argument("--no-chroma", action="store_true", help="skip the chromadb comparison")
    ap.add_argument("--cell-seconds", type=float, default=12.0,
                    help="a chroma mode stops timing after this many seconds ...")
    ap.add_argument("--min-queries", type=int, default=20,
                    help="... once it has timed at least this many queries")
    ap.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results",
                                                   "hybrid.json"))
    args = ap.parse_args()
    t_start = time.perf_counter()
    if args.quick and args.n is None:
        args.n = 20_000
    nq = args.queries or (100 if args.quick else 300)
    reps = 10 if args.quick else COMMON_REPS
    commit = git_state()
    notes: List[str] = []

    loads: Dict[str, Optional[float]] = {"start": other_load()}
    if loads["start"] is not None and loads["start"] > 0.2:
        print(f"warning: other processes keep {loads['start']:.2f} cores busy; timings will "
              "be skewed")
    data = load(args)
    X, Q, names = data["X"], data["Q"], data["names"]
    n, dim = X.shape
    docs = [f"{a}: {b}" for a, b in zip(names, data["summaries"])]
    rng = np.random.default_rng(SEED)
    chosen = rng.choice(n, size=min(n, nq + WARMUP), replace=False)
    picks, warm = chosen[:nq], chosen[nq:]
    nq = len(picks)
    print(f"dataset {data['name']}: {n:,} x {dim}, cosine; documents \"name: summary\" "
          f"(mean {np.mean([len(d) for d in docs]):.0f} chars); {nq} named packages (seed "
          f"{SEED}), unrelated vectors from {len(Q)} query rows; vecdb from "
          f"{os.path.dirname(vecdb.__file__)} ({commit})", flush=True)

    tmp = tempfile.mkdtemp(prefix="vecdb-hybrid-")
    builds: Dict[str, Dict[str, Any]] = {}
    modes: Dict[str, Dict[str, Any]] = {}
    common: List[Dict[str, Any]] = []
    examples: List[Dict[str, Any]] = []
    ranks: Dict[str, List[Optional[int]]] = {}
    chroma: Optional[Dict[str, Any]] = None
    try:
        # -- builds: the text index's cost on Flat, then the HNSW collection searched --------
        for label, ti in (("flat_notext", False), ("flat_text", True)):
            print(f"building {label} (Flat, text_index={ti}) ...", flush=True)
            db, col, info = build(tmp, label, X, docs, vecdb.Flat(), ti)
            db.close()
            info["disk_bytes"] = dir_bytes(info["path"])
            shutil.rmtree(info.pop("path"), ignore_errors=True)
            builds[label] = info
            print(f"  {info['add_s']:.1f} s, {info['rows_per_s']:,.0f} rows/s, "
                  f"{info['disk_bytes'] / 1e6:,.1f} MB on disk", flush=True)
        loads["after flat builds"] = other_load(0.5)
        print("building hnsw_text (HNSW, text_index=True) ...", flush=True)
        db, col, info = build(tmp, "hnsw_text", X, docs, vecdb.HNSW(), True)
        builds["hnsw_text"] = info
        print(f"  {info['add_s']:.1f} s, {info['rows_per_s']:,.0f} rows/s", flush=True)
        loads["after hnsw build"] = other_load(0.5)

        # -- latency and relevance -------------------------------------------------------------
        kw = {"include": (), "n_threads": 1}
        rrf, wtd = vecdb.RRF(k=60), vecdb.Weighted(alpha=0.5)

        def make(mode: str, idx: np.ndarray) -> Callable[[int], Sequence[Any]]:
            if mode == "keyword":
                return lambda i: col.query(text=names[idx[i]], k=K, **kw).ids
            if mode == "vector (unrelated)":
                return lambda i: col.query(Q[i % len(Q)], k=K, **kw).ids
            if mode == "hybrid RRF (unrelated)":
                return lambda i: col.query(Q[i % len(Q)], text=names[idx[i]], k=K,
                                           fusion=rrf, **kw).ids
            if mode == "hybrid Weighted (unrelated)":
                return lambda i: col.query(Q[i % len(Q)], text=names[idx[i]], k=K,
                                           fusion=wtd, **kw).ids
            if mode == "vector (own)":
                return lambda i: col.query(X[idx[i]], k=K, **kw).ids
            if mode == "hybrid RRF (own)":
                return lambda i: col.query(X[idx[i]], text=names[idx[i]], k=K, fusion=rrf,
                                           **kw).ids
            if mode == "hybrid Weighted (own)":
                return lambda i: col.query(X[idx[i]], text=names[idx[i]], k=K, fusion=wtd,
                                           **kw).ids
            raise ValueError(mode)

        mode_names = ["keyword", "vector (unrelated)", "hybrid RRF (unrelated)",
                      "hybrid Weighted (unrelated)", "vector (own)", "hybrid RRF (own)",
                      "hybrid Weighted (own)"]
        # warm-up: the same mode on the warm-up rows (other packages; their unrelated
        # vectors are query rows the timed calls use too, with a different text)
        for mode in mode_names:
            ms, found = timed(make(mode, picks), nq, make(mode, warm), len(warm))
            rel = relevance(found, picks.tolist())
            modes[mode] = {**lat_stats(ms),
                           **{k: v for k, v in rel.items() if k not in ("missed", "ranks")},
                           "missed_rows": [int(picks[i]) for i in rel["missed"]]}
            ranks[mode] = rel["ranks"]
            print(f"  {mode:<28} p50 {modes[mode]['p50_ms']:.3f} ms  p95 "
                  f"{modes[mode]['p95_ms']:.3f} ms  found@10 {rel['found_at_10']:.3f}  "
                  f"found@1 {rel['found_at_1']:.3f}", flush=True)

        # hybrid hits carry their sides: where did the found target come from?
        side_counts = {"both": 0, "text only": 0, "vector only": 0}
        for i in range(nq):
            r = col.query(Q[i % len(Q)], text=names[picks[i]], k=K, fusion=rrf, **kw)
            for h in r:
                if h.id == int(picks[i]) and h.sides:
                    s = set(h.sides)
                    side_counts["both" if s >= {"vector", "text"} else
                                "text only" if "text" in s else "vector only"] += 1
        modes["hybrid RRF (unrelated)"]["target_sides"] = side_counts

        # the named packages keyword search does not rank first, or hybrid misses: what came
        # first on the text side instead, and where each mode put the package
        odd = [i for i in range(nq) if ranks["keyword"][i] != 1
               or any(ranks[m][i] is None for m in mode_names if m.startswith("hybrid"))]
        for i in odd[:10]:
            row = int(picks[i])
            r = col.query(text=names[row], k=K, include=("document",))
            examples.append({"row": row, "name": names[row], "doc": docs[row][:80],
                             "keyword_first": (r[0].document or "")[:80] if len(r) else None,
                             "ranks": {m: ranks[m][i] for m in mode_names
                                       if "vector" not in m}})

        # common-word keyword queries
        tok = tokenizer()
        wanted = {t for q in COMMON_QUERIES for t in tok(q)}
        df: Dict[str, int] = {t: 0 for t in wanted}
        for d in docs:
            for t in wanted.intersection(tok(d)):
                df[t] += 1
        for text in COMMON_QUERIES:
            for _ in range(3):
                col.query(text=text, k=K, **kw)
            settle()
            lat = []
            gc.disable()
            try:
                for _ in range(reps):
                    t0 = time.perf_counter()
                    col.query(text=text, k=K, **kw)
                    lat.append(time.perf_counter() - t0)
            finally:
                gc.enable()
            terms = list(dict.fromkeys(tok(text)))
            postings = sum(df.get(t, 0) for t in terms)
            common.append({"text": text, **lat_stats(np.array(lat) * 1e3), "terms": terms,
                           "postings": postings})
            print(f"  keyword {text!r:<50} p50 {common[-1]['p50_ms']:.3f} ms  "
                  f"({postings:,} postings)", flush=True)
        loads["after vecdb queries"] = other_load(0.5)
        db.close()
        db = col = None
        gc.collect()
        info["disk_bytes"] = dir_bytes(info.pop("path"))

        # -- chroma ----------------------------------------------------------------------------
        if args.no_chroma:
            notes.append("chroma skipped (--no-chroma)")
        else:
            try:
                import chromadb  # noqa: F401
            except Exception as ex:  # ImportError, or a broken install
                msg = f"note: chromadb does not import ({type(ex).__name__}: {ex}); skipped"
                print(msg)
                notes.append(msg)
            else:
                print("building chroma (PersistentClient, same rows and documents) ...",
                      flush=True)
                try:
                    chroma = run_chroma(tmp, X, Q, docs, picks, warm, names, args)
                except Exception as ex:
                    msg = f"note: chroma failed: {type(ex).__name__}: {ex}"
                    print(msg)
                    notes.append(msg)
                loads["after chroma"] = other_load(0.5)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    loads["end"] = other_load()
    total_s = time.perf_counter() - t_start

    # -- report ----------------------------------------------------------------------------------
    mach = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "simd": getattr(getattr(vecdb, "_native", None), "SIMD", None),
            "numpy": np.__version__, "python": sys.version.split()[0],
            "vecdb": vecdb.__version__, "vecdb_git": commit,
            "chromadb": version("chromadb")}
    print()
    print(f"## hybrid.py — {data['name']}: {n:,} documents x {dim}-d vectors, cosine, "
          f"{nq} named-package queries, k={K}; total {total_s / 60:.1f} min")
    print(f"machine: {mach['cpus']} CPUs, {mach['processor']}, vecdb {mach['vecdb']} SIMD "
          f"{mach['simd']} ({mach['vecdb_git']}), numpy {mach['numpy']}, Python "
          f"{mach['python']}, chromadb {mach['chromadb']}")
    print("other processes' load (cores busy while the benchmark slept): "
          + ", ".join(f"{k} {fmt(v)}" for k, v in loads.items()))
    busy = [k for k, v in loads.items() if v is not None and v > 0.2]
    if busy:
        print(f"warning: outside load above 0.2 cores at {', '.join(busy)}; those timings "
              "may be skewed")
    print()
    f0, f1 = builds["flat_notext"], builds["flat_text"]
    text_us = (f1["add_s"] - f0["add_s"]) / n * 1e6
    print(f"Build (adds in batches of {ADD_BATCH:,} with documents, durability=normal; "
          f"vecdb builds with one thread per online CPU):")
    table(["collection", "index", "text_index", "add s", "rows/s", "disk MB"])
    for b in builds.values():
        print(f"| {b['label']} | {b['index']} | {b['text_index']} | {b['add_s']:.1f} | "
              f"{b['rows_per_s']:,.0f} | {b['disk_bytes'] / 1e6:,.1f} |")
    print(f"text index cost (Flat, with minus without): {text_us:.0f} µs per document, "
          f"add throughput {f1['rows_per_s'] / f0['rows_per_s']:.2f}x of without, "
          f"+{(f1['disk_bytes'] - f0['disk_bytes']) / 1e6:,.1f} MB on disk")
    if chroma:
        print(f"chroma build (HNSW M=16, ef_construction=200, documents, batches of "
              f"{ADD_BATCH:,}): {chroma['build_s']:.1f} s ({chroma['rows_per_s']:,.0f} "
              f"rows/s), {chroma['disk_bytes'] / 1e6:,.1f} MB on disk")
    print()
    print(f"Latency and relevance ({nq} named packages; one query per call, n_threads=1, "
          f"include=(), after {len(warm)} warm-up queries on other rows). 'unrelated': the "
          "vector is queries.f16.npy row i % 1000 (another package's summary); 'own': the "
          "named package's own summary embedding.")
    table(["mode", "p50 ms", "p95 ms", "found in top 10", "found first", "mean rank found"])
    for m in mode_names:
        r = modes[m]
        print(f"| {m} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | {r['found_at_10']:.3f} | "
              f"{r['found_at_1']:.3f} | {fmt(r['mean_rank_found'])} |")
    sc = modes["hybrid RRF (unrelated)"].get("target_sides", {})
    print("hybrid RRF (unrelated): the found target came from "
          + ", ".join(f"{k} {v}" for k, v in sc.items()) + " (its hit's sides)")
    if examples:
        print(f"named packages not first by keyword or missed by a hybrid mode ({len(examples)}"
              " shown; rank in each mode, '-' not in the top 10):")
        for e in examples:
            print(f"  {e['name']!r} (row {e['row']}: {e['doc']!r}); keyword's first: "
                  f"{e['keyword_first']!r}; ranks: "
                  + ", ".join(f"{m} {v if v is not None else '-'}"
                              for m, v in e["ranks"].items()))
    print()
    print(f"Keyword latency of common-word queries ({reps} calls each after 3 warm-up; "
          "postings: documents holding each query term, summed):")
    table(["query", "terms", "postings", "p50 ms", "p95 ms"])
    for c in common:
        print(f"| {c['text']} | {len(c['terms'])} | {c['postings']:,} | {c['p50_ms']:.3f} | "
              f"{c['p95_ms']:.3f} |")
    worst = max(common, key=lambda c: c["p50_ms"])
    print(f"worst common-word query: {worst['text']!r} p50 {worst['p50_ms']:.3f} ms, p95 "
          f"{worst['p95_ms']:.3f} ms")

    ratio = None
    if chroma:
        print()
        print(f"Peer: chromadb {chroma['version']} where_document={{\"$contains\": name}} on "
              f"the same documents (PersistentClient; query: the same unrelated vector, "
              f"n_results=10; get: limit=10); a mode stops after {args.cell_seconds:g} s once "
              f"{args.min_queries} queries are timed")
        table(["engine / mode", "queries", "p50 ms", "p95 ms", "found in top 10"])
        kwd = modes["keyword"]
        print(f"| vecdb query(text=name) | {kwd['timed']} | {kwd['p50_ms']:.3f} | "
              f"{kwd['p95_ms']:.3f} | {kwd['found_at_10']:.3f} |")
        for key, label in (("query_contains", "chroma query(v, where_document $contains)"),
                           ("get_contains", "chroma get(where_document $contains)")):
            r = chroma["modes"].get(key)
            if r:
                print(f"| {label} | {r['timed']} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | "
                      f"{r['found_at_10']:.3f} |")
        r = chroma["modes"].get("query_contains")
        if r:
            ratio = kwd["p50_ms"] / r["p50_ms"]
            print(f"latency ratio vecdb keyword p50 / chroma query $contains p50: {ratio:.3f} "
                  f"(chroma {1 / ratio:.1f}x the latency of vecdb)")
        g = chroma["modes"].get("get_contains")
        if g:
            print(f"latency ratio vecdb keyword p50 / chroma get $contains p50: "
                  f"{kwd['p50_ms'] / g['p50_ms']:.3f}")

    # -- targets -----------------------------------------------------------------------------------
    targets = Targets()
    check, checks = targets.check, targets.checks

    at = "" if n >= 100_000 else f" (measured at {n:,} documents, not 100k)"
    kp = modes["keyword"]["p50_ms"]
    check("keyword p50 <= 5 ms at 100k documents (name queries)", kp <= TARGET_KEYWORD_P50_MS,
          f"p50 {kp:.3f} ms{at}")
    check("keyword p50 <= 5 ms on the worst common-word query (stricter reading)",
          worst["p50_ms"] <= TARGET_KEYWORD_P50_MS,
          f"{worst['text']!r} p50 {worst['p50_ms']:.3f} ms{at}")
    kf = modes["keyword"]["found_at_10"]
    vf = modes["vector (unrelated)"]["found_at_10"]
    for fu in ("RRF", "Weighted"):
        hf = modes[f"hybrid {fu} (unrelated)"]["found_at_10"]
        check(f"hybrid {fu} finds the named package in the top 10 at least as often as "
              "keyword-only", hf >= kf, f"{hf:.3f} vs keyword {kf:.3f} ({round(hf * nq)} vs "
              f"{round(kf * nq)} of {nq})")
        check(f"hybrid {fu} finds it far more often than vector-only (>= +{FAR_MORE:.0%})",
              hf - vf >= FAR_MORE, f"{hf:.3f} vs vector-only {vf:.3f}")
    vo = modes["vector (own)"]["found_at_10"]
    for fu in ("RRF", "Weighted"):
        ho = modes[f"hybrid {fu} (own)"]["found_at_10"]
        check(f"hybrid {fu} does not hurt when the vector points at the package (brief's "
              "extra: >= vector-only with its own embedding)", ho >= vo,
              f"{ho:.3f} vs vector-only {vo:.3f}")
    for note in notes:
        print(f"  {note}")

    out = {"dataset": data["name"], "n": n, "dim": dim, "k": K, "metric": "cosine",
           "queries": nq, "warmup_queries": len(warm), "seed": SEED, "quick": args.quick,
           "add_batch": ADD_BATCH, "machine": mach, "builds": builds,
           "text_index_us_per_doc": text_us, "modes": modes, "common_queries": common,
           "worst_common_query": worst, "odd_examples": examples,
           "chroma": chroma, "vecdb_over_chroma_p50": ratio, "targets": checks,
           "notes": notes, "other_load_cores": loads, "total_s": total_s,
           "date": time.strftime("%Y-%m-%d")}
    write_json(args.json, out)


if __name__ == "__main__":
    main()
