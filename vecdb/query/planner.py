"""The search planner: exact scan, graph traversal or IVF-PQ probe, and the min(k, eligible)
guarantee.

A query searches the *eligible* rows: the live rows, or, under a filter, the live rows the
filter allows (query/selection.py), whose exact number is known before the search.

Rules:
 1. No graph, fewer than EXACT_SCAN_BELOW eligible rows, or k >= eligible rows: exact scan
    (as fast as a graph search at that size, and exact).
 2. Under a filter, exact scan of the allowed rows when it is cheaper than the filtered graph
    search: when allowed * sqrt(dim / 128) < FILTER_EXACT_FACTOR * sqrt(rows * ef). An exact
    scan costs about 0.4 ns per allowed row and dimension; a filtered graph search walks
    through more nodes as the allowed share drops, so the two meet where allowed^2 grows
    with rows * ef. The form and the factor were fitted by benchmarks/planner_calibration.py
    on six synthetic collections (50k-200k rows, 128 and 384 dims) and pypi-minilm: the
    chosen plan was the faster one within 1% on average (benchmarks/RESULTS.md).
 3. Otherwise the graph, with ef = max(ef, k); allowed rows only enter the results. The C
    search picks its traversal from the allowed share (csrc/hnsw_filter.c): below 2% and
    above 50% every node routes; in between, expansions score allowed neighbours and the
    allowed neighbours of excluded ones (two hops), widening ef by up to 2x below 5%.
 4. An IVF-PQ index is used once trained (before, rule 1's exact scan); under a filter, exact
    scan when the allowed rows hold fewer floats than the codes the probe would read (its
    nprobe widens until the probed lists hold about k * rescore allowed rows, see
    index/ivfpq.py): allowed * dim < scanned codes * m.
 5. A graph or IVF search that returns fewer than min(k, eligible) hits for some query
    (tombstones or a filter can cut a graph region off, probed lists can lack allowed rows)
    is redone for those queries by exact scan, so a query always returns min(k, eligible)
    hits.

Quantized indexes (HNSW over SQ8 / PQ codes, IVF-PQ) return exact distances: they rescore
their best k * rescore candidates from the float32 rows (index/codes.py, index/ivfpq.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..index.flat import FlatIndex
from ..index.hnsw import HnswIndex
from ..index.ivfpq import IvfPqIndex

Index = Union[HnswIndex, IvfPqIndex]

EXACT_SCAN_BELOW = 4096
FILTER_EXACT_FACTOR = 2.2


@dataclass
class Plan:
    """How a query was answered (explain() reports it)."""

    method: str                   # "exact", "hnsw" or "ivfpq"
    ef: Optional[int]             # candidate list of the graph search
    eligible: int = 0             # rows the query could return
    rescanned: int = 0            # queries redone by exact scan (rule 5)
    visited: int = 0              # nodes / rows / lists examined (when counted)
    distances: int = 0            # distance computations (when counted)
    reason: str = ""
    nprobe: Optional[int] = None  # lists probed by an IVF-PQ search
    rescored: int = 0             # candidates rescored exactly (quantized indexes)


def choose(index: Optional[Index], n_rows: int, eligible: int, k: int, ef: int,
           filtered: bool, dim: int, nprobe: Optional[int] = None,
           rescore: Optional[int] = None) -> Tuple[str, str]:
    """(method, reason) by rules 1-4."""
    if index is None:
        return "exact", "the collection has no graph index"
    if eligible < EXACT_SCAN_BELOW:
        return "exact", f"fewer than {EXACT_SCAN_BELOW} eligible rows"
    if k >= eligible:
        return "exact", "k covers every eligible row"
    if isinstance(index, IvfPqIndex):
        return _choose_ivf(index, n_rows, eligible, k, filtered, dim, nprobe, rescore)
    if filtered and eligible * math.sqrt(dim / 128) < \
            FILTER_EXACT_FACTOR * math.sqrt(n_rows * max(ef, k)):
        return "exact", "few allowed rows: scanning them is cheaper than a filtered traversal"
    return "hnsw", "graph traversal" + (" restricted to allowed rows" if filtered else "")


def _choose_ivf(index: IvfPqIndex, n_rows: int, eligible: int, k: int, filtered: bool,
                dim: int, nprobe: Optional[int], rescore: Optional[int]) -> Tuple[str, str]:
    config = index.config
    if not index.trained:
        return "exact", (f"the IVF-PQ index is not trained yet (it trains at "
                         f"{config.rows_to_train} rows, or on optimize())")
    if filtered:
        nlist = max(index.nlist, 1)
        n_cand = k * (rescore or config.rescore)
        probed = max(nprobe or config.probes(nlist), n_cand * nlist / max(eligible, 1))
        scanned = n_rows * min(probed, nlist) / nlist
        if eligible * dim < scanned * config.m:
            return "exact", "few allowed rows: scanning them is cheaper than probing lists"
    return "ivfpq", "IVF-PQ probe" + (" restricted to allowed rows" if filtered else "")


def search(flat: FlatIndex, index: Optional[Index],
           views: Callable[[int], Sequence[np.ndarray]], shift: int, n_rows: int,
           eligible: int, queries: np.ndarray, k: int, ef: int, deny: Optional[np.ndarray],
           n_threads: int, allow: Optional[np.ndarray] = None, counting: bool = False,
           nprobe: Optional[int] = None,
           rescore: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, Plan]:
    """(rows [nq, k], kernel distances [nq, k], plan) over the eligible rows of [0, n_rows):
    those in allow (if given) and not in deny (if given). counting=True fills the plan's
    visited / distances counters. nprobe and rescore override the index's defaults."""
    k = min(k, eligible)
    if isinstance(index, IvfPqIndex):  # (a reader) takes in new rows, or lists trained since
        index.extend(views, n_rows)
    method, reason = choose(index, n_rows, eligible, k, ef, allow is not None,
                            queries.shape[1], nprobe, rescore)
    stats: Optional[Dict[str, int]] = {} if counting else None
    if method == "exact":
        rows, dists = flat.search(views(n_rows), shift, n_rows, queries, k, deny=deny,
                                  allow=allow, n_threads=n_threads, stats=stats)
        return rows, dists, _plan("exact", None, eligible, 0, stats, reason)
    if method == "ivfpq":
        ef = None
        rows, dists = index.search(views, n_rows, queries, k, nprobe=nprobe, rescore=rescore,
                                   deny=deny, allow=allow,
                                   eligible=eligible if allow is not None else None,
                                   n_threads=n_threads, stats=stats)
    else:
        ef = max(ef, k)
        rows, dists = index.search(views, n_rows, queries, k, ef=ef, deny=deny, allow=allow,
                                   rescore=rescore, n_threads=n_threads, stats=stats)
    if (rows[0, -1] >= 0) if len(rows) == 1 else (rows[:, -1].min() >= 0):  # all k found
        return rows, dists, _plan(method, ef, eligible, 0, stats, reason)
    short = np.flatnonzero(rows[:, -1] < 0)
    rows[short], dists[short] = flat.search(views(n_rows), shift, n_rows, queries[short], k,
                                            deny=deny, allow=allow, n_threads=n_threads,
                                            stats=stats)
    return rows, dists, _plan(method, ef, eligible, len(short), stats, reason)


def _plan(method: str, ef: Optional[int], eligible: int, rescanned: int,
          stats: Optional[Dict[str, int]], reason: str) -> Plan:
    stats = stats or {}
    return Plan(method, ef, eligible, rescanned, stats.get("visited", 0),
                stats.get("distances", 0), reason, stats.get("nprobe"),
                stats.get("rescored", 0))
