"""BM25 scoring of a keyword query over a collection's postings (storage/postings.py).

For a query with term counts qtf(t) and a document d of length |d| holding term t tf(t, d)
times, in a corpus of N documents of average length avgdl where t occurs in df(t) of them:

    score(d) = sum over t of  qtf(t) * idf(t) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))
    idf(t)   = ln(1 + (N - df + 0.5) / (df + 0.5))

(the Lucene form of idf: never negative, so a term in most documents still adds a little).
k1 (term-frequency saturation, default 1.2) and b (length normalization, default 0.75) are
the usual knobs.

Invariants:
 1. Only rows holding at least one query term are scored; a row's score is the sum of its
    terms' contributions, computed in float64 in term order.
 2. Results are ordered by score descending, ties by the smaller row, as the vector search
    orders its distances.
 3. An allow bitset (bit r: row r may be returned) restricts the rows before ranking.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Tuple

import numpy as np

K1 = 1.2
B = 0.75


def idf(n_docs: int, df: int) -> float:
    """The inverse document frequency of a term found in df of n_docs documents."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def score(lists: Mapping[str, Tuple[np.ndarray, int]], n_docs: int, avg_len: float, *,
          k: Optional[int] = None, k1: float = K1, b: float = B,
          allow: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(rows int64, scores float64) of the k best rows holding a query term (all of them
    when k is None), best first.

        >>> p = np.array([(3, 1, 4), (5, 2, 4)], dtype=[("row", "u8"), ("tf", "u4"), ("dl", "u4")])
        >>> score({"aapl": (p, 1)}, n_docs=10, avg_len=4.0)[0].tolist()
        [5, 3]

    lists maps each query term to (its postings: fields row, tf, dl; its count in the
    query)."""
    rows_parts, score_parts = [], []
    avg = avg_len if avg_len > 0 else 1.0
    for postings, qtf in lists.values():
        if not len(postings):
            continue
        tf = postings["tf"].astype(np.float64)
        norm = k1 * (1.0 - b + b * postings["dl"].astype(np.float64) / avg)
        weight = qtf * idf(n_docs, len(postings))
        rows_parts.append(postings["row"].astype(np.int64))
        score_parts.append(weight * tf * (k1 + 1.0) / (tf + norm))
    if not rows_parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    rows = np.concatenate(rows_parts)
    contrib = np.concatenate(score_parts)
    if allow is not None:
        keep = (allow[rows >> 6] >> (rows & 63).astype(np.uint64)) & np.uint64(1)
        rows, contrib = rows[keep.astype(bool)], contrib[keep.astype(bool)]
    unique, inverse = np.unique(rows, return_inverse=True)
    totals = np.bincount(inverse, weights=contrib, minlength=len(unique))
    if k is not None and k < len(unique):  # the k best and every row tied with the k-th
        kth = np.partition(-totals, k - 1)[k - 1]
        pick = np.flatnonzero(-totals <= kth)
        unique, totals = unique[pick], totals[pick]
    order = np.lexsort((unique, -totals))[:k]  # score descending, then row ascending
    return unique[order], totals[order]
