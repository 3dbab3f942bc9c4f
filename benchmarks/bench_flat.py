"""Exact (flat) search and add throughput of vecdb, against numpy in the same run.

    python benchmarks/bench_flat.py --dataset ../shared/datasets/pypi-minilm-100k
    python benchmarks/bench_flat.py              # synthetic 100k x 384 when no dataset

Measures, on one collection (cosine, durability="normal"):
  - add throughput: col.add in batches of --batch rows with small metadata (vectors/s);
  - single-query latency: col.query (full API), the raw C scan (_native.flat_search), and
    numpy's `X @ q` + argpartition + sort on the same normalized float32 rows;
  - batch latency for --nq queries: col.query(Q) against numpy `Q @ X.T` + argpartition.
Results are checked against numpy (exact search must agree) and written to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

import vecdb
from common import open_dataset
from vecdb import _native


def load(dataset: "str | None", n: int, dim: int, nq: int):
    opened = open_dataset(dataset)
    if opened is not None:
        name, base, Q = opened
        return np.asarray(base[:n], dtype=np.float32), Q[:nq], name
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, dim)).astype(np.float32)
    Q = rng.normal(size=(nq, dim)).astype(np.float32)
    return X, Q, f"synthetic-{n}x{dim}"


def timed(fn, repeat: int) -> "tuple[float, object]":
    """Median seconds of fn() over repeat runs (after one warm-up), and its last result.

    Sleeps first: OpenBLAS worker threads spin for a while after a numpy call and would steal
    the second core from whatever is measured next.
    """
    time.sleep(0.5)
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def numpy_topk(X: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = X @ q
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def numpy_topk_batch(X: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    scores = Q @ X.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--nq", type=int, default=1000, help="queries in the batch test")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1000, help="rows per add() call")
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--json", default="benchmarks/results/bench_flat.json")
    args = ap.parse_args()

    X, Q, name = load(args.dataset, args.n, args.dim, args.nq)
    n, dim = X.shape
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)  # what a cosine collection stores
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    meta = [{"i": i, "group": f"g{i % 100}"} for i in range(n)]
    ids = [f"id-{i}" for i in range(n)]

    tmp = tempfile.mkdtemp(prefix="vecdb-bench-")
    try:
        db = vecdb.open(os.path.join(tmp, "bench.vdb"), durability="normal")
        col = db.create_collection("bench", dim=dim, metric="cosine", index=vecdb.Flat())
        t0 = time.perf_counter()
        for s in range(0, n, args.batch):
            col.add(ids=ids[s:s + args.batch], vectors=X[s:s + args.batch],
                    metadatas=meta[s:s + args.batch])
        add_s = time.perf_counter() - t0
        add_rate = n / add_s

        rows = col._rows.store.views(n)
        shift = col._rows.store.shift
        q = Q[0]
        qn = Qn[:1]
        t_api, hits = timed(lambda: col.query(q, k=args.k, include=()), args.repeat)
        t_c1, _ = timed(lambda: _native.flat_search(rows, shift, n, qn, args.k, "ip",
                                                     n_threads=1), args.repeat)
        t_c, (c_rows, _) = timed(lambda: _native.flat_search(rows, shift, n, qn, args.k, "ip"),
                                 args.repeat)
        t_np, np_rows = timed(lambda: numpy_topk(Xn, Qn[0], args.k), args.repeat)
        agree_single = c_rows[0].tolist() == np_rows.tolist()

        reps = max(3, args.repeat // 10)
        t_api_b, batch = timed(lambda: col.query(Q, k=args.k, include=()), reps)
        t_np_b, np_b = timed(lambda: numpy_topk_batch(Xn, Qn, args.k), reps)
        got = np.array([[int(h.id[3:]) for h in r] for r in batch])
        recall = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(got, np_b)]))
        db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows_out = [
        ("add, batches of %d, durability=normal" % args.batch, f"{add_rate:,.0f} vectors/s",
         "target >= 150,000/s", f"{add_rate / 150_000:.2f}x target"),
        ("1 query: col.query (API)", f"{t_api * 1e3:.2f} ms", f"numpy {t_np * 1e3:.2f} ms",
         f"{t_np / t_api:.2f}x"),
        ("1 query: C scan, default threads", f"{t_c * 1e3:.2f} ms", f"numpy {t_np * 1e3:.2f} ms",
         f"{t_np / t_c:.2f}x"),
        ("1 query: C scan, 1 thread", f"{t_c1 * 1e3:.2f} ms", f"numpy {t_np * 1e3:.2f} ms",
         f"{t_np / t_c1:.2f}x"),
        (f"{len(Q)} queries: col.query (API)", f"{t_api_b * 1e3:.1f} ms",
         f"numpy {t_np_b * 1e3:.1f} ms", f"{t_np_b / t_api_b:.2f}x"),
    ]
    print(f"\ndataset {name}: {n} x {dim}, k={args.k}, cosine; SIMD {_native.SIMD}; "
          f"{os.cpu_count()} CPUs; {platform.processor() or platform.machine()}; "
          f"numpy {np.__version__}")
    print(f"| {'measure':<40} | {'vecdb':>20} | {'peer':>20} | {'ratio (>1: vecdb faster)':>24} |")
    print(f"|{'-' * 42}|{'-' * 22}|{'-' * 22}|{'-' * 26}|")
    for r in rows_out:
        print(f"| {r[0]:<40} | {r[1]:>20} | {r[2]:>20} | {r[3]:>24} |")
    print(f"exact results agree with numpy: single query {agree_single}, batch recall@{args.k} "
          f"{recall:.4f} (ties may reorder equal distances)")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"dataset": name, "n": n, "dim": dim, "k": args.k, "simd": _native.SIMD,
                   "add_vectors_per_s": add_rate, "single_api_ms": t_api * 1e3,
                   "single_c_ms": t_c * 1e3, "single_c_1thread_ms": t_c1 * 1e3,
                   "single_numpy_ms": t_np * 1e3, "batch_nq": len(Q),
                   "batch_api_ms": t_api_b * 1e3, "batch_numpy_ms": t_np_b * 1e3,
                   "batch_recall_vs_numpy": recall, "python": sys.version.split()[0]}, f, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
