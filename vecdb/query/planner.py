"""The search planner: exact scan or graph traversal, and the min(k, live) guarantee.

Rules:
 1. No graph, fewer than EXACT_SCAN_BELOW live rows, or k >= live rows: exact scan (it is as
    fast as a graph search at that size, and exact).
 2. Otherwise the graph, with ef = max(ef, k).
 3. A graph search that returns fewer than min(k, live) hits for some query (tombstones can
    cut a graph region off) is redone for those queries by exact scan, so a query always
    returns min(k, live) hits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from ..index.flat import FlatIndex
from ..index.hnsw import HnswIndex

EXACT_SCAN_BELOW = 4096


@dataclass(frozen=True)
class Plan:
    """How a query was answered."""

    method: str          # "exact" or "hnsw"
    ef: Optional[int]    # candidate list of the graph search
    rescanned: int = 0   # queries redone by exact scan (rule 3)


def search(flat: FlatIndex, graph: Optional[HnswIndex], views: Callable[[int], Sequence[np.ndarray]],
           shift: int, n_rows: int, live: int, queries: np.ndarray, k: int, ef: int,
           deny: Optional[np.ndarray], n_threads: int) -> Tuple[np.ndarray, np.ndarray, Plan]:
    """(rows [nq, k], kernel distances [nq, k], plan) for rows [0, n_rows) minus deny."""
    k = min(k, live)
    if graph is None or live < EXACT_SCAN_BELOW or k >= live:
        rows, dists = flat.search(views(n_rows), shift, n_rows, queries, k, deny=deny,
                                  n_threads=n_threads)
        return rows, dists, Plan("exact", None)
    ef = max(ef, k)
    rows, dists = graph.search(views, n_rows, queries, k, ef=ef, deny=deny, n_threads=n_threads)
    if (rows[0, -1] >= 0) if len(rows) == 1 else (rows[:, -1].min() >= 0):  # all k found
        return rows, dists, Plan("hnsw", ef)
    short = np.flatnonzero(rows[:, -1] < 0)
    if len(short):
        rows[short], dists[short] = flat.search(views(n_rows), shift, n_rows, queries[short], k,
                                                deny=deny, n_threads=n_threads)
    return rows, dists, Plan("hnsw", ef, len(short))
