"""Quantized search (SQ8, PQ, IVF-PQ) of vecdb against faiss, in the same process and run.

    python benchmarks/quantization.py                 # ../shared/datasets/pypi-minilm-100k
    python benchmarks/quantization.py --quick         # its first 20,000 rows, fewer points
    python benchmarks/quantization.py --dataset none  # synthetic clustered unit rows, 384-d

On the same unit rows (metric cosine: inner product of normalised rows), k=10, for
  - vecdb: HNSW over float32 (the baseline), HNSW + SQ8, HNSW + PQ(m=48) and IVFPQ(nlist, m=48,
    nbits=8), all with M=16, ef_construction=200 where there is a graph;
  - faiss: IndexHNSWFlat (baseline), IndexHNSWSQ (QT_8bit), IndexHNSWPQ(m=48) and
    IndexIVFPQ(nlist, m=48, 8), the three quantized ones wrapped in IndexRefineFlat
    (k_factor = rescore), all METRIC_INNER_PRODUCT, same M and efConstruction; and
    "faiss-L2": IndexHNSWPQ with METRIC_L2 (on unit rows the same ranking), because faiss's
    HNSW-PQ graph is poor under inner product (recall@10 about 0.25 on pypi-minilm-100k:
    the graph is built on PQ distances, the symmetric ones L2 whatever the metric);
    faiss's efSearch is set to max(ef, k * rescore), what vecdb searches with (faiss itself
    would keep efSearch below the k * k_factor candidates IndexRefineFlat asks for);
it reports, per configuration:
  - RAM bytes per vector of what the search traverses: codes (vecdb col.stats()
    code_bytes_per_vector; faiss the storage's / the IVF's code_size) and links (vecdb
    graph_bytes_per_vector; faiss neighbors + offsets + levels) and ids of the IVF lists, plus
    the fixed size of quantizer parameters / centroids, and what rescoring reads (vecdb: the
    float32 segment files, memory-mapped; faiss: IndexRefineFlat's own float32 copy in heap);
  - build time (rows added + training + encoding; 2 threads: vecdb's C core uses one per
    online CPU, faiss gets omp_set_num_threads(--build-threads)), and the growth of RSS and
    of anonymous RSS (RssAnon: heap, not file pages) over the build;
  - recall@10 against the exact top-10 (the dataset's gt_top100[:, :10] on the full dataset,
    else numpy) and single-thread QPS over a sweep of ef (HNSW) or nprobe (IVF) and rescore:
    all queries in one call (vecdb col.query(Q, k, ef=/nprobe=, rescore=, include=(),
    n_threads=1); faiss index.search(Q, k) after omp_set_num_threads(1)), fastest of --repeat
    passes;
  - QPS at equal recall: each method's QPS at recall 0.95 and 0.97 (linear interpolation
    between two sweep points that bracket it, of one rescore value or of the recall / QPS
    frontier over all points, the best), and the vecdb / faiss ratios;
  - the per-call overhead: one query per call against the batch, at one point per method;
  - the issue's targets, PASS / FAIL.
The quantizers are trained on the same sample in both engines: at most 65,536 rows evenly
spaced over the collection (vecdb: train_size above the row count, then col.optimize(), which
samples so; --train default uses the configs' own train_size instead: training happens
inside col.add on the first rows).
The outside load (other processes) is measured before and after each index; --wait-quiet S
waits up to S seconds for an idle machine before each build. The full run takes about 8
minutes on 2 cores, --quick about 2.
Prints markdown tables, writes JSON (benchmarks/results/quantization.json).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # measure this tree's vecdb, not another installed copy
import vecdb  # noqa: E402
from common import (dataset_rows, Targets, exact_topk, git_state, normalized,  # noqa: E402
                    open_dataset, other_load, recall_at_k, settle, trim_heap, version,
                    write_json)

K = 10
ADD_BATCH = 10_000
TARGETS = (0.95, 0.97)
TRAIN_SAMPLE = 65_536       # vecdb's index/codes.py TRAIN_SAMPLE: both engines train on it
NEVER = 10 ** 12            # a train_size no collection here reaches: train on optimize()
DEFAULT_DATASET = os.path.join(ROOT, "..", "shared", "datasets", "pypi-minilm-100k")

FULL = {"efs": [16, 24, 32, 48, 64, 96, 128, 192, 256],
        "nprobes": [4, 8, 16, 32, 64, 128, 256],
        "sq8_rescore": [1, 2, 4], "pq_rescore": [4, 10, 20], "ivf_rescore": [4, 10, 20],
        "pq_extra_efs": [384, 512]}
QUICK = {"efs": [16, 32, 64, 128, 256],
         "nprobes": [4, 16, 64],
         "sq8_rescore": [2, 4], "pq_rescore": [10], "ivf_rescore": [10], "pq_extra_efs": []}
# the point of each method at which the per-call overhead is measured (vecdb's defaults)
DEFAULT_POINT = {"hnsw": (64, None), "sq8": (64, 4), "pq": (64, 10),
                 "ivfpq": (0, 10)}  # the nprobe is set from nlist in main()


# -- data ------------------------------------------------------------------------------------

def synthetic(n: int, nq: int, dim: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Unit rows around 100 random centres (spread 3 per coordinate, noise 1), and queries
    drawn the same way."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(100, dim)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        lab = rng.integers(0, len(centers), size=m)
        return normalized(centers[lab] + rng.normal(size=(m, dim)).astype(np.float32))

    return draw(n), draw(nq)




def load(args: argparse.Namespace) -> Dict[str, Any]:
    d = None if args.dataset in ("", "none") else args.dataset
    opened = open_dataset(d)
    if opened is not None:
        name, X, Q, whole = dataset_rows(opened, args.n, args.nq)
        gt, source = None, "numpy exact"
        gt_path = os.path.join(d, "gt_top100.i32.npy")
        if whole and os.path.exists(gt_path):
            gt = np.load(gt_path)[:len(Q), :K].astype(np.int64)
            source = "dataset gt_top100[:, :10]"
        return {"name": name, "X": X, "Q": Q, "gt": gt, "gt_source": source,
                "synthetic": False}
    n = args.n or 100_000
    X, Q = synthetic(n, args.nq, args.dim)
    return {"name": f"synthetic-clusters-{n}x{args.dim}", "X": X, "Q": Q, "gt": None,
            "gt_source": "numpy exact", "synthetic": True}




def train_sample(n: int, limit: int = TRAIN_SAMPLE) -> np.ndarray:
    """The rows vecdb's quantizer training samples (index/codes.py sample_rows)."""
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    return (np.arange(limit, dtype=np.int64) * n) // limit


def pick_nlist(n: int) -> int:
    """A power of two near 4 * sqrt(n), with at least 39 training rows per list."""
    target = 4 * math.sqrt(n)
    nlist = 2 ** round(math.log2(target))
    while nlist > 1 and 39 * nlist > min(n, TRAIN_SAMPLE):
        nlist //= 2
    return nlist


# -- measuring helpers -----------------------------------------------------------------------



def memory() -> Tuple[Optional[int], Optional[int]]:
    """(RSS, RssAnon) bytes of this process (None when unknown)."""
    rss = anon = None
    try:
        import psutil
        rss = psutil.Process().memory_info().rss
    except ImportError:
        pass
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, anon






def fmt(x: Optional[float], spec: str = ",.0f") -> str:
    return "n/a" if x is None else format(x, spec)


def mb(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x / 1e6:,.1f}"


def qps_at(points: Sequence[Dict[str, Any]], target: float) -> Dict[str, Any]:
    """QPS at recall `target` by linear interpolation between two measured points that
    bracket it: consecutive points of one rescore value (in knob order), or consecutive
    points of the recall / QPS Pareto frontier over all points (which may pair two rescore
    values); the best of these. When no pair brackets it but points reach it, the QPS of the
    fastest such point, flagged as a lower bound. {"qps": None, ...} when none reaches it."""
    cands: List[Tuple[float, Any, str, bool]] = []

    def lerp(a: Dict[str, Any], b: Dict[str, Any]) -> float:
        t = (target - a["recall"]) / (b["recall"] - a["recall"])
        return a["qps"] + t * (b["qps"] - a["qps"])

    def name(p: Dict[str, Any]) -> str:
        return f"{p['knob_name']}={p['knob']}/rescore={p['rescore'] or '-'}"

    curves: Dict[Any, List[Dict[str, Any]]] = {}
    for p in points:
        curves.setdefault(p["rescore"], []).append(p)
    for rescore, pts in curves.items():
        pts = sorted(pts, key=lambda p: p["knob"])
        for a, b in zip(pts, pts[1:]):
            if a["recall"] < target <= b["recall"]:
                cands.append((lerp(a, b), rescore, f"between {name(a)} and {name(b)}", False))
                break
    front: List[Dict[str, Any]] = []  # by recall descending, QPS ascending
    for p in sorted(points, key=lambda p: (-p["recall"], -p["qps"])):
        if not front or p["qps"] > front[-1]["qps"]:
            front.append(p)
    front.reverse()  # recall ascending, QPS descending
    for a, b in zip(front, front[1:]):
        if a["recall"] < target <= b["recall"]:
            mix = a["rescore"] if a["rescore"] == b["rescore"] else \
                f"{a['rescore']}->{b['rescore']}"
            cands.append((lerp(a, b), mix, f"frontier between {name(a)} and {name(b)}", False))
    if not cands:
        reach = [p for p in points if p["recall"] >= target]
        if reach:
            p = max(reach, key=lambda p: p["qps"])
            cands.append((p["qps"], p["rescore"], f"every point reaches it; fastest "
                                                  f"{name(p)}", True))
    if not cands:
        return {"qps": None, "rescore": None, "lower_bound": False, "note": "never reached "
                f"(max recall {max((p['recall'] for p in points), default=0):.4f})"}
    q, rescore, note, lower = max(cands, key=lambda c: c[0])
    return {"qps": q, "rescore": rescore, "note": note, "lower_bound": lower}


# -- engines ---------------------------------------------------------------------------------

class Method:
    """One index under test. build(); set(knob, rescore); batch() -> ids [nq, K];
    single(i) -> ids of query i alone (after set)."""

    engine = ""

    def __init__(self, kind: str, data: Dict[str, Any], args: argparse.Namespace,
                 variant: str = "") -> None:
        self.kind = kind            # hnsw | sq8 | pq | ivfpq
        self.variant = variant      # faiss: "" (inner product) or "L2" (on unit rows)
        if variant:
            self.engine = f"{self.engine}-{variant}"
        self.X, self.Q, self.args = data["X"], data["Q"], args
        self.n, self.dim = self.X.shape
        self.q2d = [self.Q[i:i + 1] for i in range(len(self.Q))]
        self.info: Dict[str, Any] = {"engine": self.engine, "method": kind}

    @property
    def label(self) -> str:
        return f"{self.engine} {LABELS[self.kind]}"

    def build(self) -> None:
        gc.collect()
        trim_heap()
        rss0, anon0 = memory()
        settle()
        self._build()
        gc.collect()
        trim_heap()
        rss1, anon1 = memory()
        self.info["rss_growth"] = None if rss0 is None or rss1 is None else rss1 - rss0
        self.info["rss_anon_growth"] = None if anon0 is None or anon1 is None else anon1 - anon0
        self._memory()

    def _build(self) -> None:
        raise NotImplementedError

    def _memory(self) -> None:
        raise NotImplementedError

    def set(self, knob: int, rescore: Optional[int]) -> None:
        self.knob, self.rescore = knob, rescore

    def batch(self) -> np.ndarray:
        raise NotImplementedError

    def single(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


LABELS = {"hnsw": "HNSW float32", "sq8": "HNSW + SQ8", "pq": "HNSW + PQ",
          "ivfpq": "IVF-PQ"}


class VecdbMethod(Method):
    engine = "vecdb"

    def _build(self) -> None:
        a = self.args
        self.tmp = tempfile.mkdtemp(prefix=f"vecdb-quant-{self.kind}-")
        self.db = vecdb.open(os.path.join(self.tmp, "q.vdb"), durability="normal")
        index: Any = vecdb.HNSW(m=a.m, ef_construction=a.ef_construction)
        quant: Any = None
        ts = {} if a.train == "default" else {"train_size": NEVER}
        if self.kind == "sq8":
            quant = vecdb.SQ8(**ts)
        elif self.kind == "pq":
            quant = vecdb.PQ(m=a.pq_m, **ts)
        elif self.kind == "ivfpq":
            index = vecdb.IVFPQ(nlist=a.nlist, m=a.pq_m, nbits=8, **ts)
        self.info["config"] = {"index": repr(index), "quantization": repr(quant)}
        self.col = self.db.create_collection("q", dim=self.dim, metric="cosine", index=index,
                                             quantization=quant)
        ids = list(range(self.n))
        t0 = time.perf_counter()
        for s in range(0, self.n, ADD_BATCH):
            self.col.add(ids=ids[s:s + ADD_BATCH], vectors=self.X[s:s + ADD_BATCH])
        t1 = time.perf_counter()
        self.info["optimize"] = None
        if self.kind != "hnsw":
            self.info["optimize"] = self.col.optimize()
        t2 = time.perf_counter()
        self.info["add_s"], self.info["train_s"] = t1 - t0, t2 - t1
        self.info["build_s"] = t2 - t0

    def _memory(self) -> None:
        st = self.col.stats()
        self.info["stats"] = st
        idx = st["index"]
        self.info["code_bpv"] = st["code_bytes_per_vector"]
        q = idx.get("quantization") or {}
        self.info["graph_bpv"] = st["graph_bytes_per_vector"]
        self.info["id_bpv"] = idx.get("id_bytes_per_vector", 0)
        d = self.dim
        fixed = {"hnsw": 0, "sq8": 2 * d * 4, "pq": 256 * d * 4,
                 "ivfpq": self.args.nlist * d * 4 + 256 * d * 4}[self.kind]
        self.info["fixed_bytes"] = fixed  # quantizer parameters / centroids (computed)
        self.info["rescore_from"] = ("-" if self.kind == "hnsw" else
                                     "float32 segment files (mmap)")
        if self.kind in ("sq8", "pq") and not q.get("trained"):
            self.info["warning"] = f"quantizer not trained after the build: {q}"
        if self.kind == "ivfpq" and not idx.get("trained"):
            self.info["warning"] = f"IVF-PQ not trained after the build: {idx}"

    def _kw(self) -> Dict[str, Any]:
        kw: Dict[str, Any] = {"include": (), "n_threads": 1}
        if self.kind == "ivfpq":
            kw["nprobe"] = self.knob
        else:
            kw["ef"] = self.knob
        if self.rescore is not None:
            kw["rescore"] = self.rescore
        return kw

    def batch(self) -> np.ndarray:
        res = self.col.query(self.Q, k=K, **self._kw())
        return res

    def ids(self, res: Any) -> np.ndarray:
        return np.array([np.asarray(r.ids, dtype=np.int64) for r in res])

    def single(self, i: int) -> Any:
        return self.col.query(self.Q[i], k=K, **self._kw())

    def explain(self) -> Dict[str, Any]:
        """The plan report of the first query at the current point (untimed)."""
        res = self.col.query(self.Q[:1], k=K, explain=True, **self._kw())
        return dict(res[0].explain)

    def close(self) -> None:
        if getattr(self, "db", None) is not None:
            self.db.close()
            self.db = None
        shutil.rmtree(getattr(self, "tmp", ""), ignore_errors=True)


class FaissMethod(Method):
    engine = "faiss"

    def _build(self) -> None:
        import faiss
        self.faiss = faiss
        a = self.args
        faiss.omp_set_num_threads(a.build_threads)
        # the L2 variant: on unit rows, L2 ranks exactly as inner product
        ip = faiss.METRIC_L2 if self.variant == "L2" else faiss.METRIC_INNER_PRODUCT
        t0 = time.perf_counter()
        if self.kind == "hnsw":
            self.base = faiss.IndexHNSWFlat(self.dim, a.m, ip)
        elif self.kind == "sq8":
            self.base = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_8bit, a.m, ip)
        elif self.kind == "pq":
            self.base = faiss.IndexHNSWPQ(self.dim, a.pq_m, a.m, 8, ip)
        else:
            self.coarse = faiss.IndexFlatIP(self.dim) if ip == faiss.METRIC_INNER_PRODUCT \
                else faiss.IndexFlatL2(self.dim)
            self.base = faiss.IndexIVFPQ(self.coarse, self.dim, a.nlist, a.pq_m, 8, ip)
            self.info["faiss_iters"] = {"coarse_kmeans": self.base.cp.niter,
                                        "pq_kmeans": self.base.pq.cp.niter}
        if self.kind != "ivfpq":
            self.base.hnsw.efConstruction = a.ef_construction
        if self.kind == "pq":
            storage = faiss.downcast_index(self.base.storage)
            self.info["faiss_iters"] = {"pq_kmeans": storage.pq.cp.niter}
        self.index = self.base if self.kind == "hnsw" else faiss.IndexRefineFlat(self.base)
        train_s = 0.0
        if self.kind != "hnsw":
            sample = self.X[train_sample(self.n)]
            t = time.perf_counter()
            self.index.train(sample)
            train_s = time.perf_counter() - t
            del sample
        t = time.perf_counter()
        self.index.add(self.X)
        t1 = time.perf_counter()
        self.info["config"] = {"index": type(self.base).__name__ + (
            " in IndexRefineFlat" if self.kind != "hnsw" else ""),
            "metric": "L2" if ip == faiss.METRIC_L2 else "INNER_PRODUCT",
            "threads": a.build_threads}
        self.info["add_s"], self.info["train_s"] = t1 - t, train_s
        self.info["build_s"] = t1 - t0

    def _memory(self) -> None:
        n, d = self.n, self.dim
        if self.kind == "ivfpq":
            self.info["code_bpv"] = self.base.code_size
            self.info["graph_bpv"] = 0
            self.info["id_bpv"] = 8  # faiss list ids are int64
            self.info["fixed_bytes"] = self.args.nlist * d * 4 + 256 * d * 4
        else:
            h = self.base.hnsw
            links = h.neighbors.size() * 4 + h.offsets.size() * 8 + h.levels.size() * 4
            self.info["code_bpv"] = self.base.storage.sa_code_size()
            self.info["graph_bpv"] = links / n
            self.info["id_bpv"] = 0
            self.info["fixed_bytes"] = {"hnsw": 0, "sq8": 2 * d * 4, "pq": 256 * d * 4}[
                self.kind]
        self.info["rescore_from"] = ("-" if self.kind == "hnsw" else
                                     "IndexRefineFlat float32 copy (heap, "
                                     f"{4 * d} B/vector)")

    def set(self, knob: int, rescore: Optional[int]) -> None:
        super().set(knob, rescore)
        self.faiss.omp_set_num_threads(1)
        if self.kind == "ivfpq":
            self.base.nprobe = knob
        else:
            # faiss keeps efSearch even when the base search wants more candidates (k *
            # k_factor); vecdb searches with max(ef, k * rescore): the same here, so that a
            # sweep row means the same candidate list in both engines
            self.base.hnsw.efSearch = max(knob, K * (rescore or 1))
        if rescore is not None:
            self.index.k_factor = float(rescore)

    def batch(self) -> np.ndarray:
        _, labels = self.index.search(self.Q, K)
        return labels

    def ids(self, res: Any) -> np.ndarray:
        return res

    def single(self, i: int) -> Any:
        _, labels = self.index.search(self.q2d[i], K)
        return labels

    def close(self) -> None:
        self.index = self.base = self.coarse = None
        gc.collect()


# -- sweep -----------------------------------------------------------------------------------

def sweep_points(kind: str, grid: Dict[str, List[int]]) -> List[Tuple[int, Optional[int]]]:
    """(knob, rescore) points of a method. For the HNSW methods a point whose ef is below
    k * rescore is left out but the first one: both engines search with max(ef, k * rescore),
    so those points are all the same search."""
    if kind == "hnsw":
        return [(ef, None) for ef in grid["efs"]]
    if kind == "ivfpq":
        return [(p, r) for r in grid["ivf_rescore"] for p in grid["nprobes"]]
    out: List[Tuple[int, Optional[int]]] = []
    for r in grid[f"{kind}_rescore"]:
        seen = set()
        for ef in grid["efs"] + (grid["pq_extra_efs"] if kind == "pq" else []):
            eff = max(ef, K * r)
            if eff in seen:
                continue
            seen.add(eff)
            out.append((ef, r))
    return out


def measure(m: Method, points: Sequence[Tuple[int, Optional[int]]], gt: np.ndarray,
            repeat: int) -> List[Dict[str, Any]]:
    nq = len(m.Q)
    knob_name = "nprobe" if m.kind == "ivfpq" else "ef"
    out = []
    for j, (knob, rescore) in enumerate(points):
        m.set(knob, rescore)
        if j == 0:
            m.batch()  # warm-up (page cache, lazily built state), untimed
        settle()
        secs, res = float("inf"), None
        for _ in range(repeat):
            t0 = time.perf_counter()
            res = m.batch()
            secs = min(secs, time.perf_counter() - t0)
        found = m.ids(res)
        eff = knob if m.kind == "ivfpq" else max(knob, K * (rescore or 1))
        out.append({"knob_name": knob_name, "knob": knob, "rescore": rescore,
                    "effective_ef": None if m.kind == "ivfpq" else eff,
                    "recall": recall_at_k(found, gt, K), "qps": nq / secs,
                    "us_per_query": secs / nq * 1e6})
    return out


def per_call(m: Method, knob: int, rescore: Optional[int]) -> Dict[str, Any]:
    """µs per query one query per call against all of them in one call, same point."""
    nq = len(m.Q)
    m.set(knob, rescore)
    m.batch()
    settle()
    t_batch = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        m.batch()
        t_batch = min(t_batch, time.perf_counter() - t0)
    settle()
    t_single = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        for i in range(nq):
            m.single(i)
        t_single = min(t_single, time.perf_counter() - t0)
    return {"knob": knob, "rescore": rescore, "batch_us": t_batch / nq * 1e6,
            "single_us": t_single / nq * 1e6,
            "overhead_us": (t_single - t_batch) / nq * 1e6}


# -- main ------------------------------------------------------------------------------------

def variants(kind: str, engines: Sequence[str], args: argparse.Namespace
             ) -> List[Tuple[str, Any, str]]:
    """(engine label, class, variant) of the indexes measured for a method."""
    out: List[Tuple[str, Any, str]] = []
    if "vecdb" in engines:
        out.append(("vecdb", VecdbMethod, ""))
    if "faiss" in engines:
        out.append(("faiss", FaissMethod, ""))
        if kind == "pq" and not args.no_faiss_pq_l2:
            out.append(("faiss-L2", FaissMethod, "L2"))
    return out


def table(head: Sequence[str]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=DEFAULT_DATASET,
                    help="folder with base.f16.npy, queries.f16.npy, gt_top100.i32.npy "
                         "(default: ../shared/datasets/pypi-minilm-100k from the project "
                         "root; 'none': synthetic data)")
    ap.add_argument("--quick", action="store_true",
                    help="the first 20,000 rows, fewer sweep points, one pass per point")
    ap.add_argument("--n", type=int, default=None, help="use the first n base rows "
                    "(ground truth then recomputed exactly)")
    ap.add_argument("--dim", type=int, default=384, help="dimension of the synthetic data")
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--m", type=int, default=16, help="HNSW M")
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--pq-m", type=int, default=0, help="PQ sub-quantizers (0: dim / 8, "
                    "48 for 384-d)")
    ap.add_argument("--nlist", type=int, default=0,
                    help="IVF lists (0: a power of two near 4 sqrt(n): 1024 at 100k)")
    ap.add_argument("--build-threads", type=int, default=2,
                    help="faiss threads for training and adding (vecdb: one per online CPU)")
    ap.add_argument("--repeat", type=int, default=0,
                    help="timed passes per sweep point, the fastest counts (0: 3, quick 1)")
    ap.add_argument("--train", choices=("optimize", "default"), default="optimize",
                    help="optimize: vecdb trains on col.optimize() after all rows are added "
                         "(the same sample as faiss); default: the configs' own train_size "
                         "(training inside col.add on the first rows)")
    ap.add_argument("--methods", default="hnsw,sq8,pq,ivfpq")
    ap.add_argument("--engines", default="vecdb,faiss")
    ap.add_argument("--no-faiss-pq-l2", action="store_true",
                    help="skip the extra faiss IndexHNSWPQ with METRIC_L2 (on unit rows the "
                         "same ranking; faiss's HNSW-PQ graph is poor under inner product)")
    ap.add_argument("--wait-quiet", type=float, default=0.0,
                    help="before each build, wait up to this many seconds for other "
                         "processes to leave the CPUs idle (their load skews timings)")
    ap.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results",
                                                   "quantization.json"))
    args = ap.parse_args()
    t_start = time.perf_counter()
    grid = QUICK if args.quick else FULL
    if args.quick and args.n is None:
        args.n = 20_000
    args.repeat = args.repeat or (1 if args.quick else 3)
    methods = [m for m in args.methods.split(",") if m]
    engines = [e for e in args.engines.split(",") if e]
    if "faiss" in engines:
        try:
            import faiss  # noqa: F401
        except ImportError as e:
            print(f"note: faiss is not installed ({e}); measuring vecdb only")
            engines.remove("faiss")

    loads: Dict[str, Optional[float]] = {"start": other_load()}
    if loads["start"] is not None and loads["start"] > 0.2:
        print(f"warning: other processes keep {loads['start']:.2f} cores busy; timings will "
              "be skewed")
    data = load(args)
    X, Q = data["X"], data["Q"]
    n, dim = X.shape
    args.pq_m = args.pq_m or max(1, dim // 8)
    args.nlist = args.nlist or pick_nlist(n)
    default_nprobe = vecdb.IVFPQ(nlist=args.nlist).probes(args.nlist)  # vecdb's default
    DEFAULT_POINT["ivfpq"] = (default_nprobe, DEFAULT_POINT["ivfpq"][1])
    if default_nprobe not in grid["nprobes"]:
        grid["nprobes"] = sorted(grid["nprobes"] + [default_nprobe])
    t0 = time.perf_counter()
    mine = exact_topk(X, Q, K)
    gt_s = time.perf_counter() - t0
    agreement = None
    if data["gt"] is not None:
        agreement = recall_at_k(mine, data["gt"], K)
        gt = data["gt"]
    else:
        gt = mine
    print(f"dataset {data['name']}: {n:,} x {dim}, {len(Q)} queries, cosine (unit rows, "
          f"inner product); ground truth: {data['gt_source']}"
          + (f" (numpy exact agrees at {agreement:.4f})" if agreement is not None else "")
          + f" [{gt_s:.1f} s]")
    print(f"M={args.m}, ef_construction={args.ef_construction}, PQ m={args.pq_m} "
          f"({dim // args.pq_m} dims per sub-quantizer), IVF nlist={args.nlist}; build threads: "
          f"vecdb one per online CPU ({os.cpu_count()}), faiss {args.build_threads}; "
          f"search: 1 thread, {args.repeat} timed pass(es) per point; vecdb from "
          f"{os.path.dirname(vecdb.__file__)}", flush=True)

    results: Dict[Tuple[str, str], Dict[str, Any]] = {}
    overhead: List[Dict[str, Any]] = []
    explains: Dict[str, Any] = {}
    busy: List[str] = []
    for kind in methods:
        points = sweep_points(kind, grid)
        for eng, cls, variant in variants(kind, engines, args):
            m = cls(kind, data, args, variant)
            load_now = other_load(0.5)
            waited = 0.0
            while load_now is not None and load_now > 0.2 and waited < args.wait_quiet:
                if waited == 0:
                    print(f"other processes keep {load_now:.2f} cores busy; waiting up to "
                          f"{args.wait_quiet:.0f} s for them", flush=True)
                time.sleep(4.5)
                waited += 5
                load_now = other_load(0.5)
            loads[f"before {m.label}"] = load_now
            if load_now is not None and load_now > 0.2:
                busy.append(f"before {m.label} ({load_now:.2f} cores)")
                print(f"warning: other processes keep {load_now:.2f} cores busy", flush=True)
            print(f"building {m.label} ...", flush=True)
            try:
                m.build()
            except Exception as e:  # a half-finished feature: report it, go on with the rest
                print(f"  FAILED: {type(e).__name__}: {e}", flush=True)
                m.info["error"] = f"{type(e).__name__}: {e}"
                results[(eng, kind)] = {**m.info, "sweep": []}
                m.close()
                continue
            i = m.info
            print(f"  {i['build_s']:.1f} s (add {i['add_s']:.1f} s, train {i['train_s']:.1f} "
                  f"s); code {i['code_bpv']} B/vec, links {i['graph_bpv']:.1f} B/vec, "
                  f"RSS +{mb(i['rss_growth'])} MB, RssAnon +{mb(i['rss_anon_growth'])} MB"
                  + (f"; {i['optimize']}" if i.get("optimize") else ""), flush=True)
            if i.get("warning"):
                print(f"  WARNING: {i['warning']}")
            sweep: List[Dict[str, Any]] = []
            try:
                t = time.perf_counter()
                sweep = measure(m, points, gt, args.repeat)
                print(f"  swept {len(points)} points in {time.perf_counter() - t:.0f} s: "
                      + ", ".join(f"{p['knob']}/{p['rescore'] or '-'} r={p['recall']:.3f} "
                                  f"{p['qps']:,.0f}/s" for p in sweep), flush=True)
                knob, rescore = DEFAULT_POINT[kind]
                oh = per_call(m, knob, rescore)
                oh.update(engine=eng, method=kind)
                overhead.append(oh)
                if eng == "vecdb":
                    m.set(knob, rescore)
                    explains[kind] = m.explain()
            except Exception as e:
                print(f"  FAILED while searching: {type(e).__name__}: {e}", flush=True)
                m.info["error"] = f"{type(e).__name__}: {e}"
            load_now = other_load(0.5)
            loads[f"after {m.label}"] = load_now
            if load_now is not None and load_now > 0.2:
                busy.append(f"after {m.label} ({load_now:.2f} cores)")
                print(f"warning: other processes keep {load_now:.2f} cores busy", flush=True)
            r = {**m.info, "sweep": sweep}
            for tgt in TARGETS:
                r[f"qps_at_{tgt}"] = qps_at(sweep, tgt) if sweep else None
            r["max_recall"] = max((p["recall"] for p in sweep), default=None)
            results[(eng, kind)] = r
            m.close()
            del m
            gc.collect()
    loads["end"] = other_load()
    total_s = time.perf_counter() - t_start

    # -- report --------------------------------------------------------------------------------
    mach = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "simd": getattr(getattr(vecdb, "_native", None), "SIMD", None),
            "numpy": np.__version__, "python": sys.version.split()[0],
            "faiss": version("faiss-cpu") or version("faiss"), "vecdb": vecdb.__version__,
            "vecdb_git": git_state()}
    all_variants = {kind: [v[0] for v in variants(kind, engines, args)] for kind in methods}
    print()
    print(f"## quantization.py — {data['name']}: {n:,} x {dim}, cosine, {len(Q)} queries, "
          f"k={K}, M={args.m}, ef_construction={args.ef_construction}, PQ m={args.pq_m}, "
          f"IVF nlist={args.nlist}")
    print(f"machine: {mach['cpus']} CPUs, {mach['processor']}, vecdb SIMD {mach['simd']} "
          f"({mach['vecdb_git']}), numpy {mach['numpy']}, Python {mach['python']}, faiss "
          f"{mach['faiss']}; total {total_s / 60:.1f} min")
    print("other processes' load (cores busy while the benchmark slept): "
          + ", ".join(f"{k} {fmt(v, '.2f')}" for k, v in loads.items()))
    if busy:
        print("warning: outside load above 0.2 cores " + ", ".join(busy)
              + "; those timings may be skewed")
    print()
    print(f"Build and memory. Build threads: vecdb {os.cpu_count()} (one per online CPU), "
          f"faiss {args.build_threads}; training sample {min(n, TRAIN_SAMPLE):,} rows evenly "
          f"spaced (both engines); vecdb trains "
          + ("on col.optimize() after the adds." if args.train == "optimize" else
             "inside col.add at the configs' train_size.")
          + " B/vec: bytes per vector held in RAM for the traversal; fixed: quantizer "
            "parameters / centroids, computed.")
    table(["engine", "method", "code B/vec", "links B/vec",
           "list ids B/vec", "fixed MB",
           "rescore reads", "build s", "add s", "train s", "RSS +MB", "RssAnon +MB"])
    for kind in methods:
        for eng in all_variants[kind]:
            r = results.get((eng, kind))
            if r is None:
                continue
            if "code_bpv" not in r:
                print(f"| {eng} | {LABELS[kind]} | failed: {r.get('error')} |")
                continue
            print(f"| {eng} | {LABELS[kind]} | {r['code_bpv']} | "
                  f"{r['graph_bpv']:.1f} | "
                  f"{r['id_bpv']} | {mb(r['fixed_bytes'])} | {r['rescore_from']} | "
                  f"{r['build_s']:.1f} | {r['add_s']:.1f} | {r['train_s']:.1f} | "
                  f"{mb(r['rss_growth'])} | {mb(r['rss_anon_growth'])} |")
    print()
    print(f"Sweeps: recall@10 / QPS (1 thread, all {len(Q)} queries in one call, fastest of "
          f"{args.repeat} passes); knob = ef (HNSW; both engines search with max(ef, "
          "k*rescore), so smaller ef are left out) or nprobe (IVF)")
    for kind in methods:
        vs = all_variants[kind]
        rs = [results.get((e, kind)) for e in vs]
        if not any(r and r["sweep"] for r in rs):
            continue
        print()
        print(f"{LABELS[kind]}:")
        peers = [e for e in vs if e != "vecdb"] if "vecdb" in vs else []
        table(["nprobe" if kind == "ivfpq" else "ef", "rescore"]
              + [f"{e} recall / QPS" for e in vs] + [f"QPS vecdb/{e}" for e in peers])
        keyed = {e: {(p["knob"], p["rescore"]): p for p in (r["sweep"] if r else [])}
                 for e, r in zip(vs, rs)}
        for pt in sweep_points(kind, grid):
            cells = [f"{keyed[e][pt]['recall']:.4f} / {keyed[e][pt]['qps']:,.0f}"
                     if pt in keyed[e] else "n/a" for e in vs]
            for e in peers:
                a, b = keyed["vecdb"].get(pt), keyed[e].get(pt)
                cells.append(f"{a['qps'] / b['qps']:.2f}x" if a and b else "n/a")
            print(f"| {pt[0]} | {pt[1] or '-'} | " + " | ".join(cells) + " |")
    print()
    print("QPS at equal recall (1 thread; linear interpolation between two bracketing sweep "
          "points of one rescore value or of the recall/QPS frontier over all of them, the "
          "best; the rescore in brackets, a->b when the bracket pairs two; '>=': every point "
          "reaches the target, a lower bound):")
    table(["method", "engine"] + [f"QPS@{t} (rescore)" for t in TARGETS]
          + [f"vecdb/engine @{t}" for t in TARGETS])
    ratios: Dict[str, Dict[str, Optional[float]]] = {}
    for kind in methods:
        mine_r = results.get(("vecdb", kind)) or {}
        for eng in all_variants[kind]:
            r = results.get((eng, kind)) or {}
            cells = [LABELS[kind], eng]
            rat = []
            for tgt in TARGETS:
                q = r.get(f"qps_at_{tgt}") or {}
                cells.append("n/a" if q.get("qps") is None else
                             (">=" if q.get("lower_bound") else "") + fmt(q["qps"])
                             + f" ({q.get('rescore') or '-'})")
                a = (mine_r.get(f"qps_at_{tgt}") or {}).get("qps")
                ratio = a / q["qps"] if eng != "vecdb" and a and q.get("qps") else None
                if eng != "vecdb":
                    ratios.setdefault(f"{kind} vs {eng}", {})[str(tgt)] = ratio
                rat.append("-" if eng == "vecdb" else
                           (f"{ratio:.2f}x" if ratio is not None else "n/a"))
            print("| " + " | ".join(cells + rat) + " |")
    for kind in methods:
        for eng in all_variants[kind]:
            r = results.get((eng, kind)) or {}
            notes = [f"{tgt}: {(r.get(f'qps_at_{tgt}') or {}).get('note', 'n/a')}"
                     for tgt in TARGETS]
            print(f"  {eng} {LABELS[kind]}: " + "; ".join(notes))
    print()
    print("Per-call overhead at one point per method (µs per query, 1 thread: one query per "
          "call against all queries in one call):")
    table(["engine", "method", "point", "batch µs/q", "one per call µs/q", "overhead µs"])
    for o in overhead:
        kn = "nprobe" if o["method"] == "ivfpq" else "ef"
        print(f"| {o['engine']} | {LABELS[o['method']]} | {kn}={o['knob']}, rescore="
              f"{o['rescore'] or '-'} | {o['batch_us']:.1f} | {o['single_us']:.1f} | "
              f"{o['overhead_us']:.1f} |")
    for kind, ex in explains.items():
        keys = ("plan", "ef", "nprobe", "nodes_visited", "distance_computations", "rescored",
                "rescanned")
        print(f"  vecdb {LABELS[kind]} plan at that point (query 0): "
              + ", ".join(f"{k}={ex.get(k)}" for k in keys if k in ex))

    # targets
    targets = Targets()
    check, checks = targets.check, targets.checks

    def at_default(r: Dict[str, Any], kind: str) -> Optional[float]:
        """Recall at vecdb's defaults: the sweep point searching with the same candidate
        list (an HNSW point stands for every ef up to k * rescore)."""
        dk, dr = DEFAULT_POINT[kind]
        for p in r["sweep"]:
            if p["rescore"] != dr:
                continue
            if p["knob"] == dk if kind == "ivfpq" else \
                    p["effective_ef"] == max(dk, K * (dr or 1)):
                return p["recall"]
        return None

    f32_bytes = 4 * dim
    for kind, floor, limit, limit_txt in (
            ("sq8", 0.97, dim, "<= dim (1/4 of float32)"),
            ("pq", 0.95, f32_bytes / 16, "<= 1/16 of float32"),
            ("ivfpq", 0.95, f32_bytes / 16, "<= 1/16 of float32")):
        r = results.get(("vecdb", kind))
        if kind not in methods or "vecdb" not in engines:
            continue
        if not r or not r.get("sweep"):
            check(f"{LABELS[kind]} recall@10 >= {floor}, code bytes {limit_txt}", False,
                  f"not measured: {(r or {}).get('error', 'no result')}")
            continue
        best = max(r["sweep"], key=lambda p: p["recall"])
        kn = "nprobe" if kind == "ivfpq" else "ef"
        dk, dr = DEFAULT_POINT[kind]
        check(f"{LABELS[kind]} recall@10 >= {floor}"
              + (" after rescoring" if kind != "sq8" else "") + f", code bytes {limit_txt}",
              best["recall"] >= floor and r["code_bpv"] <= limit,
              f"best recall {best['recall']:.4f} ({kn}={best['knob']}, rescore="
              f"{best['rescore']}); at the defaults ({kn}={dk}, rescore={dr}) "
              f"{fmt(at_default(r, kind), '.4f')}; code {r['code_bpv']} B per vector, limit "
              f"{limit:.0f} B")
    if "vecdb" in engines:
        for kind in methods:
            for eng in all_variants[kind]:
                if eng == "vecdb":
                    continue
                for tgt in TARGETS:
                    ratio = ratios.get(f"{kind} vs {eng}", {}).get(str(tgt))
                    a = (results.get(("vecdb", kind)) or {}).get(f"qps_at_{tgt}") or {}
                    b = (results.get((eng, kind)) or {}).get(f"qps_at_{tgt}") or {}
                    if ratio is None:
                        who = [e for e, q in (("vecdb", a), (eng, b)) if q.get("qps") is None]
                        detail = f"not comparable: {', '.join(who)} never reached {tgt}"
                    else:
                        lb = " (a '>=' lower bound involved)" if a.get("lower_bound") or \
                            b.get("lower_bound") else ""
                        detail = f"vecdb/{eng} {ratio:.2f}x{lb}"
                    check(f"{LABELS[kind]} QPS >= {eng} at recall {tgt}",
                          None if ratio is None else ratio >= 1.0, detail)
    for (e, kind), r in results.items():
        if r.get("error"):
            print(f"  error in {e} {LABELS[kind]}: {r['error']}")
        if r.get("warning"):
            print(f"  warning in {e} {LABELS[kind]}: {r['warning']}")

    out = {"dataset": data["name"], "n": n, "dim": dim, "nq": len(Q), "k": K,
           "metric": "cosine", "m": args.m, "ef_construction": args.ef_construction,
           "pq_m": args.pq_m, "nlist": args.nlist, "build_threads_faiss": args.build_threads,
           "build_threads_vecdb": os.cpu_count(), "search_threads": 1,
           "repeat": args.repeat, "quick": args.quick, "train": args.train,
           "train_sample": min(n, TRAIN_SAMPLE), "grid": grid,
           "ground_truth": data["gt_source"], "ground_truth_numpy_agreement": agreement,
           "machine": mach, "results": [dict(v) for v in results.values()],
           "qps_ratio_vecdb_over_peer": ratios, "per_call_overhead": overhead,
           "vecdb_explain": explains, "targets": checks,
           "other_load_cores": loads, "total_s": total_s, "date": time.strftime("%Y-%m-%d")}
    write_json(args.json, out)


if __name__ == "__main__":
    main()
