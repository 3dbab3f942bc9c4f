"""Helpers shared by the benchmark scripts: the dataset folders of ../shared/datasets, unit
rows, and the two measuring courtesies (let numpy's threads settle; report outside load).

The scripts run as ``python benchmarks/<name>.py``, so this folder is on sys.path and they
import it as ``common``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


def normalized(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows kept), float32 C-contiguous."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return np.ascontiguousarray(X / norms, dtype=np.float32)


def open_dataset(d: Optional[str]) -> Optional[Tuple[str, np.ndarray, np.ndarray]]:
    """(name, base rows float16 memory-mapped, queries float32) of a dataset folder in the
    ../shared/datasets format (base.f16.npy, queries.f16.npy), or None when there is none
    (with a note when a folder was named): the caller then makes synthetic data."""
    if d and os.path.exists(os.path.join(d, "base.f16.npy")):
        base = np.load(os.path.join(d, "base.f16.npy"), mmap_mode="r")
        queries = np.load(os.path.join(d, "queries.f16.npy")).astype(np.float32)
        return os.path.basename(os.path.normpath(d)), base, queries
    if d:
        print(f"note: no base.f16.npy in {d!r}; using synthetic data")
    return None


def dataset_rows(opened: Tuple[str, np.ndarray, np.ndarray], n: Optional[int],
                 nq: Optional[int] = None) -> Tuple[str, np.ndarray, np.ndarray, bool]:
    """(name, X, Q, whole) of an ``open_dataset`` result: its first n base rows (all when n
    is None or larger) and first nq queries (all when None), both as unit float32 rows;
    whole tells whether X is every base row, and the name gets "[:n]" when it is not."""
    name, base, queries = opened
    full_n = base.shape[0]
    n = min(n or full_n, full_n)
    X = normalized(np.asarray(base[:n], dtype=np.float32))
    whole = n == full_n
    return (name if whole else f"{name}[:{n}]"), X, normalized(queries[:nq]), whole


def settle() -> None:
    """OpenBLAS worker threads spin for a while after a numpy call and would steal the second
    core from whatever is measured next."""
    time.sleep(0.5)


def other_load(seconds: float = 1.0) -> Optional[float]:
    """CPU cores busy machine-wide while this process sleeps (other processes' load, which
    would skew the timings), or None without psutil."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.cpu_percent(interval=seconds) / 100 * (os.cpu_count() or 1)


def exact_topk(X: np.ndarray, Q: np.ndarray, k: int, metric: str = "ip",
               block: int = 50_000) -> np.ndarray:
    """Row indices [nq, k] of the exact nearest rows, best first (ip: largest dot, which is
    cosine on unit rows; l2: smallest squared distance), by numpy in blocks of rows."""
    nq = len(Q)
    best_s = np.full((nq, k), -np.inf, dtype=np.float32)
    best_i = np.zeros((nq, k), dtype=np.int64)
    for s in range(0, len(X), block):
        Xb = X[s:s + block]
        scores = Q @ Xb.T  # larger is closer
        if metric == "l2":
            scores = 2 * scores - np.einsum("ij,ij->i", Xb, Xb)[None, :]
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, top, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, top + s], axis=1)
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, order, axis=1)
        best_i = np.take_along_axis(cand_i, order, axis=1)
    return best_i


def recall_at_k(found: np.ndarray, gt: np.ndarray, k: int) -> float:
    """Mean share of each query's true top k (gt rows) among its first k found rows."""
    hits = 0
    for f, g in zip(found, gt):
        hits += len(set(np.asarray(f)[:k].tolist()) & set(g[:k].tolist()))
    return hits / (k * len(gt))


def trim_heap() -> None:
    """Gives free heap memory back to the OS (glibc), so that memory freed by an earlier
    build does not hide the growth of the next one."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def version(pkg: str) -> Optional[str]:
    """The installed version of a package, or None."""
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_state() -> Optional[str]:
    """The vecdb commit measured, '+dirty' when vecdb/ or csrc/ differ from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "vecdb",
                                "csrc"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty.strip() else "")


def write_json(path: str, out: Dict[str, Any]) -> None:
    """Writes a benchmark's results (non-JSON values as str) and says where."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2, default=str)
    print(f"wrote {path}")


class Targets:
    """The PASS / FAIL / n/a lines of a benchmark's targets, printed as they are checked and
    kept (``checks``) for its JSON."""

    def __init__(self) -> None:
        self.checks: List[Dict[str, Any]] = []
        print()
        print("Targets:")

    def check(self, name: str, ok: Optional[bool], detail: str) -> None:
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        self.checks.append({"target": name, "result": verdict, "detail": detail})
        print(f"  {verdict}: {name} — {detail}")
