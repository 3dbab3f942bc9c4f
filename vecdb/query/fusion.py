"""Rank fusion of a hybrid query's two candidate lists: the vector side (rows by distance,
ascending) and the text side (rows by BM25 score, descending).

    RRF(k=60):        fused(r) = sum over the sides that found r of 1 / (k + rank)
    Weighted(alpha):  fused(r) = alpha * v(r) + (1 - alpha) * t(r), where v and t are each
                      side's scores min-max scaled to [0, 1] over its candidates (vector
                      score = -distance; a side that did not find r gives 0)

Invariants:
 1. Ranks are 1-based positions in each side's list; a row found by one side only gets that
    side's term alone.
 2. The fused ranking is by fused score descending, ties by the smaller row, so it does not
    depend on the order the sides are given in.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from ..config import RRF, Weighted

Sides = Dict[int, Dict[str, Dict[str, float]]]


def fuse(vector_rows: np.ndarray, vector_dists: np.ndarray, text_rows: np.ndarray,
         text_scores: np.ndarray, k: int, fusion: Any) -> Tuple[List[int], List[float], Sides]:
    """(rows, fused scores, per-row sides) of the k best rows, best first. Rows < 0 (unused
    slots) are ignored."""
    keep = vector_rows >= 0
    vector_rows, vector_dists = vector_rows[keep], vector_dists[keep]
    sides: Sides = {}
    for rank, (row, dist) in enumerate(zip(vector_rows.tolist(), vector_dists.tolist()), 1):
        sides.setdefault(row, {})["vector"] = {"rank": rank, "distance": dist}
    for rank, (row, score) in enumerate(zip(text_rows.tolist(), text_scores.tolist()), 1):
        sides.setdefault(row, {})["text"] = {"rank": rank, "score": score}
    if isinstance(fusion, RRF):
        fused = {row: sum(1.0 / (fusion.k + s["rank"]) for s in found.values())
                 for row, found in sides.items()}
    elif isinstance(fusion, Weighted):
        v = _scaled(vector_rows, -vector_dists)
        t = _scaled(text_rows, text_scores)
        fused = {row: fusion.alpha * v.get(row, 0.0) + (1.0 - fusion.alpha) * t.get(row, 0.0)
                 for row in sides}
    else:  # checked by the caller
        raise TypeError(f"unknown fusion {fusion!r}")
    best = sorted(fused, key=lambda row: (-fused[row], row))[:k]
    return best, [fused[row] for row in best], {row: sides[row] for row in best}


def _scaled(rows: np.ndarray, scores: np.ndarray) -> Dict[int, float]:
    """Min-max scaling of one side's scores to [0, 1] (all 1.0 when they are equal)."""
    if not len(rows):
        return {}
    lo, hi = float(scores.min()), float(scores.max())
    span = hi - lo
    scaled = (scores - lo) / span if span > 0 else np.ones(len(scores))
    return dict(zip(rows.tolist(), scaled.tolist()))
