"""Reads behind query() and get(): search output and row lists turned into Results and
records, read from LMDB in one snapshot, and the explain() report.

Invariant: rows are only meaningful in their generation, so every function that reads
records by row first checks, in the same LMDB transaction, that the generation is still the
one the rows came from (collection.py, invariant 4), and reports a change to its caller.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .query import filters, planner
from .query.selection import Selection
from .results import Results
from .rowset import RowSet
from .storage import keys, records


def generation_is(txn: Any, env: Any, prefix: bytes, gen: int) -> bool:
    """True if the collection's current generation, as txn sees it, is gen."""
    raw = txn.get(prefix, db=env.dbs["state"])
    return raw is not None and keys.unpack_state(raw)[2] == gen


def hits(env: Any, prefix: bytes, metric: str, rows: RowSet, found: np.ndarray, dists: np.ndarray,
         fields: Tuple[str, ...]) -> Optional[List[Results]]:
    """Turns C result rows into Results, reading records in one LMDB snapshot; None if the
    generation changed since the search (the caller searches again)."""
    rows_db = env.dbs["rows"]
    want_meta, want_doc = "metadata" in fields, "document" in fields
    want_body = want_meta or want_doc
    # public distance: cosine runs as -dot on unit vectors; the score is always -kernel
    offset = 1.0 if metric == "cosine" else 0.0
    if not fields:  # ids only: the id column suffices when every id is an int
        results = _hits_from_id_column(rows, found, dists, offset)
        if results is not None:
            return results
    public = dists + offset if offset else dists
    out: List[Results] = []
    with env.read() as txn:
        if not generation_is(txn, env, prefix, rows.gen):
            return None
        for qrows, qpublic in zip(found.tolist(), public.tolist()):
            ids, dist, metas, docs, hit_rows = [], [], [], [], []
            for row, pub in zip(qrows, qpublic):
                if row < 0:
                    break
                value = txn.get(prefix + keys.pack_u64(row), db=rows_db)
                if value is None:  # deleted by a concurrent writer since the search
                    continue
                if want_body:
                    ext_id, meta, doc = records.decode(value)
                    metas.append(meta or {})
                    docs.append(doc)
                else:
                    ext_id = records.decode_id(value)
                ids.append(ext_id)
                dist.append(pub)
                hit_rows.append(row)
            vectors = read_vectors(rows, hit_rows) if "vector" in fields else None
            out.append(Results._from_columns(ids, dist, offset,
                                             metas if want_meta else None,
                                             docs if want_doc else None, vectors))
    return out


def _hits_from_id_column(rows: RowSet, found: np.ndarray, dists: np.ndarray,
                         offset: float) -> Optional[List[Results]]:
    """Results with ids read from the id column (no LMDB), or None if a hit has a str id.
    Consistent without a transaction: the column belongs to rows' generation."""
    per_query = []
    for qrows, qdists in zip(found.tolist(), dists.tolist()):
        n = len(qrows) if not qrows or qrows[-1] >= 0 else qrows.index(-1)
        int_ids = rows.int_ids(qrows[:n]) if n else []
        if int_ids is None:
            return None
        per_query.append((int_ids, [d + offset for d in qdists[:n]] if offset else qdists[:n]))
    return [Results._from_columns(i, d, offset, None, None) for i, d in per_query]


def scan_records(txn: Any, rows_db: Any, prefix: bytes, offset: int,
                 limit: Optional[int]) -> List[Tuple[int, bytes]]:
    """(row, record) of live rows in row order, skipping offset, at most limit."""
    found: List[Tuple[int, bytes]] = []
    with txn.cursor(db=rows_db) as cur:
        if not cur.set_range(prefix):
            return found
        skipped = 0
        for key, value in cur:
            if not key.startswith(prefix):
                break
            if skipped < offset:
                skipped += 1
                continue
            found.append((keys.key_row(key), value))
            if limit is not None and len(found) >= limit:
                break
    return found


def explain_report(plan: planner.Plan, node: filters.Node, selection: Optional[Selection], live: int,
             n_queries: int, t0: float, t1: float) -> Dict[str, Any]:
    """The report of query(..., explain=True)."""
    matches = live if selection is None else selection.matches
    now = time.perf_counter()
    return {"plan": plan.method, "reason": plan.reason, "filter": filters.describe(node),
            "matches": matches, "live": live,
            "selectivity": matches / live if live else 0.0, "k_eligible": plan.eligible,
            "ef": plan.ef, "nprobe": plan.nprobe, "rescored": plan.rescored,
            "queries": n_queries, "nodes_visited": plan.visited,
            "distance_computations": plan.distances, "rescanned": plan.rescanned,
            "filter_cached": bool(selection and selection.cached),
            "filter_ms": 1e3 * (selection.seconds if selection else 0.0),
            "search_ms": 1e3 * (now - t1), "total_ms": 1e3 * (now - t0)}


def keyword_report(counts: List[Dict[str, int]], ranked: List[Tuple[np.ndarray, np.ndarray]],
                   node: filters.Node, selection: Optional[Selection], live: int, t0: float,
                   t1: float) -> Dict[str, Any]:
    """The report of query(text=..., explain=True)."""
    matches = live if selection is None else selection.matches
    now = time.perf_counter()
    return {"plan": "keyword", "reason": "BM25 over the documents' postings",
            "filter": filters.describe(node), "matches": matches, "live": live,
            "terms": [list(c) for c in counts],
            "hits": [len(rows) for rows, _ in ranked], "queries": len(counts),
            "filter_cached": bool(selection and selection.cached),
            "filter_ms": 1e3 * (selection.seconds if selection else 0.0),
            "search_ms": 1e3 * (now - t1), "total_ms": 1e3 * (now - t0)}


def hybrid_report(plan: Optional[planner.Plan], fusion: Any, n_cand: int,
                  counts: List[Dict[str, int]],
                  lists: List[Dict[str, Any]], node: filters.Node,
                  selection: Optional[Selection], live: int, t0: float,
                  t1: float) -> Dict[str, Any]:
    """The report of a hybrid query(q, text=..., explain=True): the vector side's plan, each
    query's two candidate lists (rows, best first) and the fused ranking with each hit's
    per-side rank and distance / score."""
    matches = live if selection is None else selection.matches
    now = time.perf_counter()
    vector = None if plan is None else {
        "plan": plan.method, "reason": plan.reason, "ef": plan.ef, "nprobe": plan.nprobe,
        "rescored": plan.rescored, "nodes_visited": plan.visited,
        "distance_computations": plan.distances, "rescanned": plan.rescanned}
    return {"plan": "hybrid", "fusion": repr(fusion), "candidates_per_side": n_cand,
            "filter": filters.describe(node), "matches": matches, "live": live,
            "vector": vector, "terms": [list(c) for c in counts],
            "queries": len(counts), "lists": lists,
            "filter_cached": bool(selection and selection.cached),
            "filter_ms": 1e3 * (selection.seconds if selection else 0.0),
            "search_ms": 1e3 * (now - t1), "total_ms": 1e3 * (now - t0)}


def read_vectors(rows: RowSet, row_numbers: List[int]) -> np.ndarray:
    if not row_numbers:
        return np.empty((0, rows.dim), dtype=np.float32)
    return rows.store.read(row_numbers, max(row_numbers) + 1)
