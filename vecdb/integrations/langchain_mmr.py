"""Numbers behind the LangChain adapter (langchain.py), kept free of any framework import:
maximal marginal relevance over fetched vectors, and the relevance score of a vecdb distance.

Invariants: ``mmr_select`` is deterministic (ties go to the earlier candidate, i.e. the one
vecdb ranked closer) and returns distinct indexes, min(k, candidates) of them; relevance
scores are in [0, 1] and equal the cosine similarity of unit-length vectors under every
metric.

    >>> import numpy as np
    >>> mmr_select(np.array([1.0, 0.0]), np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]]), 2, 0.3)
    [0, 2]
    >>> relevance_fn("l2")(0.5)
    0.75
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _unit_rows(a: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.where(norms > 0, norms, 1.0)


def mmr_select(query: np.ndarray, candidates: np.ndarray, k: int,
               lambda_mult: float) -> list[int]:
    """Indexes into candidates ([n, dim], best-ranked first) of k picks by maximal marginal
    relevance: first the most similar to query, then each time the candidate maximizing
    ``lambda_mult * sim(query) - (1 - lambda_mult) * max sim(already picked)`` (cosine).

    >>> mmr_select(np.ones(2), np.eye(2), 5, 0.5)
    [0, 1]
    """
    rows = _unit_rows(np.asarray(candidates, dtype=np.float64))
    to_query = rows @ _unit_rows(np.asarray(query, dtype=np.float64).reshape(-1))
    chosen: list[int] = []
    redundancy = np.full(len(rows), -np.inf)
    free = np.ones(len(rows), dtype=bool)
    for _ in range(min(k, len(rows))):
        if chosen:
            gain = lambda_mult * to_query - (1.0 - lambda_mult) * redundancy
        else:
            gain = to_query.copy()
        gain[~free] = -np.inf
        pick = int(np.argmax(gain))  # the first of equal gains: the closer candidate
        chosen.append(pick)
        free[pick] = False
        redundancy = np.maximum(redundancy, rows @ rows[pick])
    return chosen


_SIMILARITY = {
    "cosine": lambda d: 1.0 - d,     # d = 1 - cos
    "l2": lambda d: 1.0 - d / 2.0,   # d = |a - b|^2 = 2 - 2 cos for unit vectors
    "ip": lambda d: -d,              # d = -dot = -cos for unit vectors
}


def relevance_fn(metric: str) -> Callable[[float], float]:
    """The distance -> relevance map of a metric: cosine similarity for unit vectors,
    clamped to [0, 1] (LangChain's relevance-score range; 1 is most similar)."""
    similarity = _SIMILARITY[metric]

    def relevance(distance: float) -> float:
        return min(1.0, max(0.0, float(similarity(distance))))

    return relevance
