"""Keyword search: the BM25 ranking (bm25.py) of a text query over a collection's postings
(storage/postings.py), read in one LMDB snapshot.

Invariants:
 1. The postings and corpus statistics come from one read transaction, which also checks
    that the collection is still in the generation the caller's rows belong to (a vacuum
    renumbers rows): on a change the caller searches again.
 2. Rows at or past n_rows (committed after the caller's snapshot of the rows) and rows
    outside allow are never returned; deleted rows have no postings (postings.py).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

import numpy as np

from ..storage import keys, postings
from . import bm25


def search(env: Any, prefix: bytes, gen: int, n_rows: int, counts: Mapping[str, int], k: int,
           *, allow: Optional[np.ndarray] = None, k1: float = bm25.K1,
           b: float = bm25.B) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(rows int64, BM25 scores float64) of the k best rows for a query's term counts
    (tokenized as the collection's documents were), best first; None when the collection
    left generation gen (invariant 1)."""
    db = env.dbs.get("postings")
    with env.read() as txn:
        raw = txn.get(prefix, db=env.dbs["state"])
        if raw is None or keys.unpack_state(raw)[2] != gen:
            return None
        if db is None or not counts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        stats = postings.TextStats.load(txn, env.dbs["meta"], prefix)
        lists = {}
        for term, qtf in counts.items():
            found = postings.read(txn, db, prefix, term)
            if len(found) and int(found["row"][-1]) >= n_rows:  # ascending rows
                found = found[: int(np.searchsorted(found["row"], n_rows))]
            lists[term] = (found, qtf)
    return bm25.score(lists, stats.docs, stats.average_length, k=k, k1=k1, b=b, allow=allow)
