"""Helpers shared by the benchmark scripts: the dataset folders of ../shared/datasets, unit
rows, and the two measuring courtesies (let numpy's threads settle; report outside load).

The scripts run as ``python benchmarks/<name>.py``, so this folder is on sys.path and they
import it as ``common``.
"""

from __future__ import annotations

import os
import time
from typing import Optional, Tuple

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
