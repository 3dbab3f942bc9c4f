"""Where an exact scan of the allowed rows beats the filtered graph search: the planner's rule.

    python benchmarks/planner_calibration.py          # synthetic grid (see --sizes, --dims)
    python benchmarks/planner_calibration.py --dataset ../shared/datasets/pypi-minilm-100k
    python benchmarks/planner_calibration.py --quick  # a small grid, a smoke test

A filter compiles to an allow-bitset whose number of set bits (the allowed rows) is known
before the search, so the planner can pick per query batch:
  - exact: vdb_flat_search restricted to the allowed rows; cost ~ allowed_rows * dim, recall 1;
  - graph: vdb_hnsw_search with the bitset (csrc/hnsw_filter.c: only allowed nodes are scored,
    reached through one or two links); its cost at recall@10 >= 0.95 grows as the allowed
    share drops, because the two-hop graph of allowed nodes gets sparser and needs a larger ef.
For each collection size and dimension, and each allowed share (a uniformly random subset of
the rows), this measures single-thread latency (one query per call, median over the queries)
of the exact scan and of the graph search at the smallest ef of --efs reaching recall@10 >=
0.95 against the exact filtered top-10, and the unfiltered graph search (the 3x latency bar of
the issue is measured against it). It then fits
  - the exact cost: t = a + b * allowed_rows * dim;
  - the crossover per (size, dim): the allowed rows where the two latencies meet (log-log
    interpolation between the measured shares);
  - the planner rule: for each candidate form, the constant that minimizes the mean
    log(latency of the chosen plan / latency of the faster plan) over all measured points:
        allowed < C                      allowed < C * sqrt(total_rows * ef)
        allowed * dim < C                allowed < C * total_rows
    and reports the best form, its constant, and its mean and worst slowdown;
  - the ef the graph needed at each share (the planner widens ef below the largest share
    that needs more than the default).
Peer (when installed): hnswlib 0.8 filtered search (knn_query(filter=callable)) on the same
rows with the same M / ef_construction, at two shares, as a latency ratio at recall >= 0.95.
The hnswlib filter is a Python callable called per candidate, which is part of its cost; the
"planned" ratio compares it with vecdb's faster plan. Prints tables (markdown), writes
benchmarks/results/planner_calibration.json (planner_calibration-<dataset>.json with
--dataset); --fit fits the rule over several result files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from common import normalized, open_dataset
from vecdb import _native

K = 10
SHIFT = 20
TARGET = 0.95
DEFAULT_EF = 64
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                       "planner_calibration.json")


# -- data -------------------------------------------------------------------------------------

def mixture(n: int, dim: int, nq: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """n rows and nq queries from 100 Gaussian clusters (centres spread 3, spread 1)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(100, dim)).astype(np.float32)
    labels = rng.integers(0, 100, size=n + nq)
    X = centers[labels] + rng.normal(size=(n + nq, dim)).astype(np.float32)
    return np.ascontiguousarray(X[:n]), np.ascontiguousarray(X[n:])


def configs(args: argparse.Namespace) -> List[Dict[str, Any]]:
    """(name, X, Q, metric) of every collection measured."""
    out = []
    opened = open_dataset(args.dataset)
    if opened is not None:
        name, base, Q = opened
        Q = normalized(Q)
        for n in sorted({min(s, base.shape[0]) for s in args.sizes}):
            X = normalized(np.asarray(base[:n], dtype=np.float32))
            out.append({"name": f"{name}[:{n}]", "X": X, "Q": Q[:args.queries], "metric": "ip"})
        return out
    for dim in args.dims:
        for n in args.sizes:
            X, Q = mixture(n, dim, args.queries, seed=n + dim)
            out.append({"name": f"gmm-{n // 1000}k-{dim}d", "X": X, "Q": Q, "metric": "l2"})
    return out


def bitset(mask: np.ndarray) -> np.ndarray:
    words = (mask.size + 63) // 64
    padded = np.zeros(words * 64, dtype=bool)
    padded[: mask.size] = mask
    return np.packbits(padded, bitorder="little").view("<u8").astype(np.uint64)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = total = 0
    for f, t in zip(found, truth):
        t = set(t[t >= 0].tolist())
        hits += len(set(f.tolist()) & t)
        total += len(t)
    return hits / total if total else 1.0


# -- measuring --------------------------------------------------------------------------------

def per_query(fn: Callable[[np.ndarray], np.ndarray], Q: np.ndarray
              ) -> Tuple[float, np.ndarray]:
    """Median microseconds of fn(one query) over the queries, and the rows found."""
    fn(Q[:1])  # warm
    found = np.empty((len(Q), K), dtype=np.int64)
    times = np.empty(len(Q))
    for i in range(len(Q)):
        q = Q[i:i + 1]
        t0 = time.perf_counter()
        found[i] = fn(q)[0]
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e6), found


def graph_at_target(graph: _native.Hnsw, X: np.ndarray, Q: np.ndarray, truth: np.ndarray,
                    efs: Sequence[int], allow: Optional[np.ndarray]) -> Dict[str, Any]:
    """The graph search at each ef of efs until recall >= TARGET: the points, and the first
    one reaching it (or the last one measured)."""
    n = X.shape[0]
    points = []
    for ef in efs:
        stats: Dict[str, int] = {}
        graph.search((X,), SHIFT, n, Q, K, ef, allow=allow, n_threads=1, stats=stats)
        p50, found = per_query(
            lambda q, ef=ef: graph.search((X,), SHIFT, n, q, K, ef, allow=allow,
                                          n_threads=1)[0], Q)
        points.append({"ef": ef, "recall": recall(found, truth), "p50_us": p50,
                       "visited": stats["visited"] / len(Q),
                       "distances": stats["distances"] / len(Q)})
        if points[-1]["recall"] >= TARGET:
            break
    best = points[-1]
    return {"points": points, "ef": best["ef"], "recall": best["recall"],
            "p50_us": best["p50_us"], "reached": best["recall"] >= TARGET}


def measure(cfg: Dict[str, Any], args: argparse.Namespace) -> Dict[str, Any]:
    X, Q, metric = cfg["X"], cfg["Q"], cfg["metric"]
    n, dim = X.shape
    t0 = time.perf_counter()
    graph = _native.Hnsw.new(dim, metric, m=args.m, ef_construction=args.ef_construction)
    graph.add((X,), SHIFT, n, n_threads=args.threads)
    build_s = time.perf_counter() - t0
    truth, _ = _native.flat_search((X,), SHIFT, n, Q, K, metric, n_threads=args.threads)
    unfiltered = graph_at_target(graph, X, Q, truth, args.efs, None)
    print(f"\n{cfg['name']}: {n} x {dim} {metric}, graph built in {build_s:.1f}s; unfiltered "
          f"graph p50 {unfiltered['p50_us']:.0f} us at ef={unfiltered['ef']} "
          f"(recall {unfiltered['recall']:.3f})", flush=True)
    print("| allowed share | allowed rows | exact p50 us | graph ef | recall | graph p50 us "
          "| distances | visited | faster |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    rows = []
    for share in args.shares:
        mask = rng.random(n) < share
        allowed = int(mask.sum())
        if allowed < K:
            continue
        allow = bitset(mask)
        ftruth, _ = _native.flat_search((X,), SHIFT, n, Q, K, metric, allow=allow,
                                        n_threads=args.threads)
        exact_p50, _ = per_query(
            lambda q: _native.flat_search((X,), SHIFT, n, q, K, metric, allow=allow,
                                          n_threads=1)[0], Q)
        g = graph_at_target(graph, X, Q, ftruth, args.efs, allow)
        last = g["points"][-1]
        faster = "exact" if exact_p50 <= g["p50_us"] else "graph"
        rows.append({"share": share, "allowed": allowed, "exact_p50_us": exact_p50,
                     "graph": g})
        print(f"| {share:.1%} | {allowed:,} | {exact_p50:,.0f} | {g['ef']} | {g['recall']:.3f}"
              f"{'' if g['reached'] else ' (<0.95)'} | {g['p50_us']:,.0f} | "
              f"{last['distances']:,.0f} | {last['visited']:,.0f} | {faster} |", flush=True)
    result = {"name": cfg["name"], "n": n, "dim": dim, "metric": metric, "build_s": build_s,
              "unfiltered": unfiltered, "shares": rows}
    result["crossover_allowed"] = crossover(rows)
    if args.peer and cfg is args.peer_cfg:
        result["hnswlib"] = peer(cfg, args, rows)
    del graph
    return result


def crossover(rows: List[Dict[str, Any]]) -> Optional[float]:
    """Allowed rows where exact and graph latencies meet (log-log interpolation), scanning from
    the largest share down; None when one plan wins everywhere."""
    pts = sorted(rows, key=lambda r: r["allowed"])
    for lo, hi in zip(pts, pts[1:]):
        a = math.log(lo["exact_p50_us"] / lo["graph"]["p50_us"])
        b = math.log(hi["exact_p50_us"] / hi["graph"]["p50_us"])
        if a <= 0 < b:
            t = a / (a - b)
            return math.exp(math.log(lo["allowed"]) * (1 - t) + math.log(hi["allowed"]) * t)
    return None


# -- fitting ----------------------------------------------------------------------------------

RULES: Dict[str, Tuple[str, Callable[[Dict[str, Any], Dict[str, Any]], float]]] = {
    # name: (description, the quantity compared with the constant C; exact when below)
    "allowed": ("exact when allowed_rows < C", lambda c, r: r["allowed"]),
    "sqrt": ("exact when allowed_rows < C * sqrt(total_rows * ef)",
             lambda c, r: r["allowed"] / math.sqrt(c["n"] * DEFAULT_EF)),
    "work": ("exact when allowed_rows * dim < C", lambda c, r: r["allowed"] * c["dim"]),
    "share": ("exact when allowed_rows < C * total_rows", lambda c, r: r["allowed"] / c["n"]),
    "sqrt_dim": ("exact when allowed_rows * sqrt(dim / 128) < C * sqrt(total_rows * ef)",
                 lambda c, r: r["allowed"] * math.sqrt(c["dim"] / 128)
                 / math.sqrt(c["n"] * DEFAULT_EF)),
}


def fit_rules(results: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Per rule form, the constant minimizing the mean log slowdown of the chosen plan (over
    the measured points and the crossovers), and how far apart the crossovers of the
    collections fall under that form (max / min of the form's quantity at the crossover:
    1 would mean the form explains every collection's crossover)."""
    points = [(c, r) for c in results for r in c["shares"]]
    fitted = {}
    for key, (text, x) in RULES.items():
        at_cross = [x(c, {"allowed": c["crossover_allowed"]}) for c in results
                    if c["crossover_allowed"] is not None]
        xs = sorted({x(c, r) for c, r in points} | set(at_cross))
        cands = [xs[0] * 0.5] + [math.sqrt(a * b) for a, b in zip(xs, xs[1:])] + [xs[-1] * 2]
        cands += xs
        best = None
        for C in cands:
            slow = []
            for c, r in points:
                ex, gr = r["exact_p50_us"], r["graph"]["p50_us"]
                if not r["graph"]["reached"]:
                    gr = math.inf  # the graph misses the recall bar: only exact qualifies
                chosen = ex if x(c, r) < C else gr
                slow.append(chosen / min(ex, gr))
            mean_log = float(np.mean(np.log(slow)))
            if best is None or mean_log < best[1]:
                best = (C, mean_log, max(slow))
        fitted[key] = {"rule": text, "C": best[0], "mean_slowdown": math.exp(best[1]),
                       "worst_slowdown": best[2],
                       "crossover_spread": max(at_cross) / min(at_cross) if at_cross else None,
                       "C_at_crossovers": math.exp(float(np.mean(np.log(at_cross))))
                       if at_cross else None}
    return fitted


def fit_exact(results: List[Dict[str, Any]]) -> Dict[str, float]:
    """t_exact_us = a + b * allowed * dim (least squares)."""
    A, y = [], []
    for c in results:
        for r in c["shares"]:
            A.append([1.0, r["allowed"] * c["dim"]])
            y.append(r["exact_p50_us"])
    (a, b), *_ = np.linalg.lstsq(np.array(A), np.array(y), rcond=None)
    return {"a_us": float(a), "b_ns_per_row_dim": float(b) * 1e3}


def ef_schedule(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The largest ef any collection needed at each share."""
    out = []
    shares = sorted({r["share"] for c in results for r in c["shares"]})
    for s in shares:
        rs = [r for c in results for r in c["shares"] if r["share"] == s]
        out.append({"share": s, "ef_needed": max(r["graph"]["ef"] for r in rs),
                    "all_reached": all(r["graph"]["reached"] for r in rs)})
    return out


# -- peer -------------------------------------------------------------------------------------

def peer(cfg: Dict[str, Any], args: argparse.Namespace, rows: List[Dict[str, Any]]
         ) -> Optional[Dict[str, Any]]:
    try:
        import hnswlib
    except ImportError:
        print("note: hnswlib is not installed; no peer comparison")
        return None
    X, Q, metric = cfg["X"], cfg["Q"], cfg["metric"]
    n, dim = X.shape
    index = hnswlib.Index(space="l2" if metric == "l2" else "ip", dim=dim)
    index.init_index(max_elements=n, M=args.m, ef_construction=args.ef_construction)
    index.set_num_threads(args.threads)
    index.add_items(X, np.arange(n))
    index.set_num_threads(1)
    out = {"version": getattr(hnswlib, "__version__", "?"), "shares": []}
    print(f"\nPeer: hnswlib filtered search (filter=callable) on {cfg['name']}, "
          f"M={args.m}, ef_construction={args.ef_construction}, one thread")
    print("| allowed share | hnswlib ef | recall | hnswlib p50 us | vecdb graph p50 us | "
          "vecdb exact p50 us | hnswlib / vecdb graph | hnswlib / vecdb planned |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    masks = {share: rng.random(n) < share for share in args.shares}
    for row in rows:
        if row["share"] not in args.peer_shares:
            continue
        mask = masks[row["share"]]
        allowed_set = mask  # numpy bool lookups: the cheapest Python filter
        ftruth, _ = _native.flat_search((X,), SHIFT, n, Q, K, metric, allow=bitset(mask),
                                        n_threads=args.threads)
        reached = None
        for ef in args.efs:
            index.set_ef(ef)
            p50, found = per_query(
                lambda q: index.knn_query(q, k=K, filter=lambda i: bool(allowed_set[i]))[0]
                .astype(np.int64), Q)
            rec = recall(found, ftruth)
            reached = {"ef": ef, "recall": rec, "p50_us": p50}
            if rec >= TARGET:
                break
        best_vecdb = min(row["exact_p50_us"], row["graph"]["p50_us"])
        graph_ratio = reached["p50_us"] / row["graph"]["p50_us"]
        ratio = reached["p50_us"] / best_vecdb
        out["shares"].append({"share": row["share"], **reached, "vecdb_best_us": best_vecdb,
                              "speedup_graph": graph_ratio, "speedup_planned": ratio})
        print(f"| {row['share']:.1%} | {reached['ef']} | {reached['recall']:.3f} | "
              f"{reached['p50_us']:,.0f} | {row['graph']['p50_us']:,.0f} | "
              f"{row['exact_p50_us']:,.0f} | {graph_ratio:.2f}x | {ratio:.2f}x |")
    return out


# -- main -------------------------------------------------------------------------------------

def load_average() -> Optional[float]:
    """1-minute load average (other processes skew single-thread latencies), if known."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", help="a folder with base.f16.npy / queries.f16.npy "
                                      "(unit rows, cosine); synthetic data without it")
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 384])
    ap.add_argument("--shares", type=float, nargs="+",
                    default=[0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5])
    ap.add_argument("--efs", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2, help="for builds and ground truth")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-peer", dest="peer", action="store_false")
    ap.add_argument("--peer-shares", type=float, nargs="+", default=[0.03, 0.1])
    ap.add_argument("--quick", action="store_true", help="sizes 20k/50k, dim 64, 100 queries")
    ap.add_argument("--out", help=f"JSON file (default {RESULTS}; with --dataset, "
                                  "planner_calibration-<dataset>.json next to it)")
    ap.add_argument("--fit", nargs="+", metavar="JSON",
                    help="measure nothing: fit the rule over the collections of earlier "
                         "result files (e.g. a synthetic and a dataset run) and print it")
    args = ap.parse_args(argv)
    if args.fit:
        results = []
        for path in args.fit:
            with open(path) as f:
                results += json.load(f)["collections"]
        report(results, args, load_before=None)
        return 0
    if args.quick:
        args.sizes, args.dims, args.queries = [20_000, 50_000], [64], 100
    if args.out is None:
        args.out = RESULTS
        if args.dataset:
            name = os.path.basename(os.path.normpath(args.dataset))
            args.out = RESULTS.replace(".json", f"-{name}.json")
    cfgs = configs(args)
    args.peer_cfg = next((c for c in cfgs if c["X"].shape[0] == 100_000), cfgs[-1])
    print(f"vecdb SIMD {_native.SIMD}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; latencies on one thread, one query per call, median of "
          f"{args.queries} queries; graph M={args.m}, ef_construction={args.ef_construction}; "
          f"recall bar {TARGET} (recall@{K} against exact filtered search); load average "
          f"{load_average()}")
    load_before = load_average()
    results = []
    for cfg in cfgs:
        results.append(measure(cfg, args))
        cfg["X"] = None  # free the rows before the next collection
    report(results, args, load_before)
    return 0


def report(results: List[Dict[str, Any]], args: argparse.Namespace,
           load_before: Optional[float]) -> None:
    """Prints the crossovers, fits and the ef schedule; writes the JSON (unless --fit)."""
    exact_fit = fit_exact(results)
    rules = fit_rules(results)
    best_key = min(rules, key=lambda k: (round(rules[k]["mean_slowdown"], 3),
                                         rules[k]["crossover_spread"] or math.inf))
    schedule = ef_schedule(results)

    print("\nCrossover (allowed rows where exact and graph latencies meet):")
    print("| collection | rows | dim | unfiltered p50 us | crossover allowed rows | "
          "crossover share | slowest chosen / unfiltered |")
    print("|---|---|---|---|---|---|---|")
    for c in results:
        x = c["crossover_allowed"]
        xs = "n/a" if x is None else f"{x:,.0f}"
        xshare = "n/a" if x is None else f"{x / c['n']:.2%}"
        worst = max(min(r["exact_p50_us"], r["graph"]["p50_us"] if r["graph"]["reached"]
                        else math.inf) for r in c["shares"]) / c["unfiltered"]["p50_us"]
        c["worst_best_over_unfiltered"] = worst
        print(f"| {c['name']} | {c['n']:,} | {c['dim']} | {c['unfiltered']['p50_us']:,.0f} | "
              f"{xs} | {xshare} | {worst:.2f}x |")
    print(f"\nExact scan cost fit: t = {exact_fit['a_us']:.1f} us + "
          f"{exact_fit['b_ns_per_row_dim']:.3f} ns * allowed_rows * dim")
    print("\nPlanner rule forms (C fitted on the measured points; slowdown = chosen plan / "
          "faster plan; spread = max / min over the collections of the form's C at their "
          "crossover, geometric mean in the next column):")
    print("| rule | C | mean slowdown | worst slowdown | crossover spread | C at crossovers |")
    print("|---|---|---|---|---|---|")
    for key, r in rules.items():
        mark = " (best)" if key == best_key else ""
        spread = "n/a" if r["crossover_spread"] is None else f"{r['crossover_spread']:.2f}"
        at = "n/a" if r["C_at_crossovers"] is None else f"{r['C_at_crossovers']:.4g}"
        print(f"| {r['rule']}{mark} | {r['C']:.4g} | {r['mean_slowdown']:.3f} | "
              f"{r['worst_slowdown']:.2f} | {spread} | {at} |")
    print("\nef the graph needed for recall >= 0.95, per allowed share (largest over the "
          "collections):")
    print(" ".join(f"{s['share']:.1%}: {s['ef_needed']}{'' if s['all_reached'] else '(!)'}"
                   for s in schedule))

    if args.fit:
        return
    print(f"load average before / after: {load_before} / {load_average()}")
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "simd": _native.SIMD, "python": sys.version.split()[0],
                       "load_before": load_before, "load_after": load_average()},
           "args": {k: v for k, v in vars(args).items() if k != "peer_cfg"},
           "collections": results, "exact_fit": exact_fit, "rules": rules,
           "best_rule": best_key, "ef_schedule": schedule}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
