"""Filter evaluation speed: a where-filter to its exact match count over 1M rows.

vecdb evaluates a filter from columnar caches of the metadata (storage/columns.py) into a
bitset, never reading a payload. This measures, on a Flat collection of N rows (default 1M)
with four metadata fields:
  - the one-time build of the filter columns from LMDB (what a first filter on a collection
    without a checkpoint costs), and the cold open of the checkpoint;
  - count(where=...) for one-predicate and compound filters, each call with a new constant so
    the evaluation cache never answers (p50 / p95 over --reps calls);
next to the same predicates evaluated by numpy on ready-made arrays (the floor: no parsing,
no catch-up, no bitset) and by pandas DataFrame.query / boolean masks when pandas is present.

    python benchmarks/filter_eval.py            # 1M rows
    python benchmarks/filter_eval.py --n 200000 --reps 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from typing import Any, Callable, Dict, List

import numpy as np

import vecdb


def timed(fn: Callable[[int], Any], reps: int) -> Dict[str, float]:
    fn(0)  # warm-up
    ts = []
    for i in range(1, reps + 1):
        t0 = time.perf_counter()
        fn(i)
        ts.append(time.perf_counter() - t0)
    ms = np.array(ts) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "filter_eval.json"))
    args = ap.parse_args()
    n = args.n
    rng = np.random.default_rng(0)
    month = rng.integers(200001, 202612, n)
    cat_codes = rng.integers(0, 50, n)
    cats = np.array([f"cat{i}" for i in range(50)])[cat_codes]
    score = rng.random(n)
    tags = rng.integers(0, 20, (n, 2))
    metas = [{"month": int(m), "cat": str(c), "score": float(s), "tags": [int(a), int(b)]}
             for m, c, s, (a, b) in zip(month, cats, score, tags)]

    path = tempfile.mkdtemp(prefix="vecdb-filter-eval-")
    db = vecdb.open(path, durability="off")
    col = db.create_collection("c", dim=4, metric="l2", index=vecdb.Flat())
    vectors = rng.standard_normal((n, 4)).astype(np.float32)
    t0 = time.perf_counter()
    for s in range(0, n, 50_000):
        col.add(ids=list(range(s, min(n, s + 50_000))), vectors=vectors[s:s + 50_000],
                metadatas=metas[s:s + 50_000])
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    col.count(where={"month": {"$lt": 0}})  # first filter: columns built from LMDB
    build_s = time.perf_counter() - t0
    db.close()  # writes the checkpoint
    db = vecdb.open(path)
    col = db.get_collection("c")
    t0 = time.perf_counter()
    col.count(where={"month": {"$lt": 0}})  # maps the checkpoint, loads one field
    open_ms = (time.perf_counter() - t0) * 1e3

    try:
        import pandas as pd
        frame = pd.DataFrame({"month": month, "cat": cats, "score": score})
    except ImportError:  # pragma: no cover - optional peer
        frame = None

    cases: List[Dict[str, Any]] = [
        {"name": "month <= v (int range, ~30%)",
         "vecdb": lambda i: {"month": {"$lte": 200800 + i % 12}},
         "numpy": lambda i: month <= 200800 + i % 12,
         "pandas": lambda i: frame["month"].values <= 200800 + i % 12},
        {"name": "cat == v (dictionary str)",
         "vecdb": lambda i: {"cat": f"cat{i % 50}"},
         "numpy": lambda i: cats == f"cat{i % 50}",
         "pandas": lambda i: frame["cat"] == f"cat{i % 50}"},
        {"name": "score < v (float)",
         "vecdb": lambda i: {"score": {"$lt": 0.5 + i * 1e-6}},
         "numpy": lambda i: score < 0.5 + i * 1e-6,
         "pandas": lambda i: frame["score"].values < 0.5 + i * 1e-6},
        {"name": "cat $in [3 values]",
         "vecdb": lambda i: {"cat": {"$in": [f"cat{(i + j) % 50}" for j in range(3)]}},
         "numpy": lambda i: np.isin(cats, [f"cat{(i + j) % 50}" for j in range(3)]),
         "pandas": lambda i: frame["cat"].isin([f"cat{(i + j) % 50}" for j in range(3)])},
        {"name": "tags $contains v (list field)",
         "vecdb": lambda i: {"tags": {"$contains": i % 20}},
         "numpy": lambda i: (tags == i % 20).any(axis=1),
         "pandas": None},
        {"name": "(month range AND cat) OR NOT score",
         "vecdb": lambda i: {"$or": [{"month": {"$gte": 201000 + i % 12, "$lt": 201500},
                                      "cat": {"$ne": "cat1"}},
                                     {"$not": {"score": {"$lt": 0.9 + i * 1e-6}}}]},
         "numpy": lambda i: (((month >= 201000 + i % 12) & (month < 201500) & (cats != "cat1"))
                             | ~(score < 0.9 + i * 1e-6)),
         "pandas": lambda i: (((frame["month"] >= 201000 + i % 12) & (frame["month"] < 201500)
                               & (frame["cat"] != "cat1")) | ~(frame["score"] < 0.9 + i * 1e-6))},
    ]
    rows = []
    for case in cases:
        expect = int(np.count_nonzero(case["numpy"](1)))
        got = col.count(where=case["vecdb"](1))
        if got != expect:
            raise SystemExit(f"{case['name']}: vecdb counted {got}, numpy {expect}")
        v = timed(lambda i: col.count(where=case["vecdb"](i)), args.reps)
        npy = timed(lambda i: int(np.count_nonzero(case["numpy"](i))), args.reps)
        pdx = (timed(lambda i: int(case["pandas"](i).sum()), args.reps)
               if frame is not None and case["pandas"] is not None else None)
        rows.append({"filter": case["name"], "matches": expect, "vecdb": v, "numpy": npy,
                     "pandas": pdx, "vecdb_vs_numpy": npy["p50_ms"] / v["p50_ms"],
                     "vecdb_vs_pandas": pdx["p50_ms"] / v["p50_ms"] if pdx else None})
    db.close()

    print(f"{n:,} rows, 4 metadata fields; add {n / add_s:,.0f} rows/s; filter columns built "
          f"from LMDB in {build_s:.2f} s ({n / build_s:,.0f} rows/s); checkpoint opened and "
          f"first field used in {open_ms:.1f} ms")
    print("| filter | matches | vecdb count p50 ms | p95 ms | numpy p50 ms | numpy/vecdb | "
          "pandas p50 ms | pandas/vecdb |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        pd_p50 = f"{r['pandas']['p50_ms']:.2f}" if r["pandas"] else "-"
        pd_ratio = f"{r['vecdb_vs_pandas']:.2f}x" if r["vecdb_vs_pandas"] else "-"
        print(f"| {r['filter']} | {r['matches']:,} | {r['vecdb']['p50_ms']:.2f} | "
              f"{r['vecdb']['p95_ms']:.2f} | {r['numpy']['p50_ms']:.2f} | "
              f"{r['vecdb_vs_numpy']:.2f}x | {pd_p50} | {pd_ratio} |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"n": n, "reps": args.reps, "add_rows_per_s": n / add_s,
                   "columns_build_s": build_s, "checkpoint_open_ms": open_ms, "rows": rows,
                   "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                               "command": "python benchmarks/filter_eval.py "
                                          f"--n {n} --reps {args.reps}"}}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
