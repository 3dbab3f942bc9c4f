"""query(text=...) and hybrid query(q, text=...) of a Collection: BM25 keyword search
(query/keyword.py) alone, or fused with the vector search (query/fusion.py).

Invariants:
 1. Both sides of a hybrid query search the same rows: the same RowSet snapshot, the same
    filter selection (which already leaves out deleted rows; deleted rows have no postings).
 2. A vacuum that renumbers rows between the search and the reading of records makes the
    query run again (collection.py, invariant 4); so does a hit deleted meanwhile by another
    writer in a hybrid query, whose per-hit sides must stay aligned with its hits.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, List, Tuple, Union

import numpy as np

from . import reads, validate
from .config import BM25, RRF, Weighted
from .errors import InvalidArgumentError
from .query import filters, fusion as fusion_mod, keyword, planner
from .results import Results
from .textindex import counts_for

if TYPE_CHECKING:  # pragma: no cover
    from .collection import Collection

HYBRID_CANDIDATES = 50  # rows each side of a hybrid query ranks, at least (and 2k)


def _text_side(col: "Collection", texts: List[str]) -> Tuple[BM25, List[Dict[str, int]]]:
    """The collection's text index config and each text's term counts under it."""
    config = col.text_index
    if config is None:
        raise InvalidArgumentError(f"text: collection {col.name!r} has no text index (it was "
                                   f"created with text_index=False)")
    return config, [counts_for(config, t) for t in texts]


def _snapshot(col: "Collection", node: filters.Node) -> Tuple[Any, Any, int, int, Any, Any]:
    """(rows, selection, n_rows, eligible, deny, allow) of the current rows under node."""
    rows, selection = (col._current(), None) if node == filters.ALL else col._select(node)
    if selection is None:
        n_rows, eligible, deny = rows.snapshot()
        return rows, None, n_rows, eligible, deny, None
    return rows, selection, selection.n_rows, selection.matches, None, selection.bits


def keyword_query(col: "Collection", text: Any, k: int, node: filters.Node,
                  fields: Tuple[str, ...], explain: bool,
                  t0: float) -> Union[Results, List[Results]]:
    """query(text=...): BM25 over the documents, under the filters."""
    texts, single = validate.texts(text)
    config, counts = _text_side(col, texts)
    env = col._db._env
    while True:
        rows, selection, n_rows, _, _, allow = _snapshot(col, node)
        t1 = time.perf_counter()
        ranked = [keyword.search(env, col._prefix, rows.gen, n_rows, c, k, allow=allow,
                                 k1=config.k1, b=config.b) for c in counts]
        if any(r is None for r in ranked):
            continue
        found = np.full((len(texts), k), -1, dtype=np.int64)
        dists = np.full((len(texts), k), np.inf, dtype=np.float64)
        for i, (hit_rows, scores) in enumerate(ranked):
            found[i, :len(hit_rows)] = hit_rows
            dists[i, :len(hit_rows)] = -scores
        results = reads.hits(env, col._prefix, "ip", rows, found, dists, fields)
        if results is None:
            continue
        if explain:
            report = reads.keyword_report(counts, ranked, node, selection, rows.live, t0, t1)
            for r in results:
                r.explain = report
        return results[0] if single else results


def hybrid_query(col: "Collection", queries: np.ndarray, single: bool, text: Any, k: int,
                 node: filters.Node, fields: Tuple[str, ...], fusion: Any, ef: int,
                 nprobe: Any, rescore: Any, n_threads: int, explain: bool,
                 t0: float) -> Union[Results, List[Results]]:
    """query(q, text=...): the vector and keyword rankings fused (module docstring)."""
    texts, _ = validate.texts(text)
    config, counts = _text_side(col, texts)
    if len(texts) == 1 and len(queries) > 1:
        counts = counts * len(queries)
        texts = texts * len(queries)
    if len(texts) != len(queries):
        raise InvalidArgumentError(f"text: {len(texts)} texts for {len(queries)} query "
                                   f"vectors (give one text, or one per vector)")
    fusion = RRF() if fusion is None else fusion
    if not isinstance(fusion, (RRF, Weighted)):
        raise InvalidArgumentError(f"fusion: expected vecdb.RRF(...) or vecdb.Weighted(...), "
                                   f"got {fusion!r}")
    env = col._db._env
    n_cand = max(HYBRID_CANDIDATES, 2 * k)
    offset = 1.0 if col.metric == "cosine" else 0.0  # kernel -> public distance
    while True:
        rows, selection, n_rows, eligible, deny, allow = _snapshot(col, node)
        t1 = time.perf_counter()
        if eligible <= 0:
            results = [Results([]) for _ in texts]
            break
        vec_rows, vec_dists, plan = planner.search(
            rows.flat, rows.index, rows.store.views, rows.store.shift, n_rows, eligible,
            queries, n_cand, ef, deny, n_threads, allow=allow, counting=explain,
            nprobe=nprobe, rescore=rescore)
        ranked = [keyword.search(env, col._prefix, rows.gen, n_rows, c, n_cand, allow=allow,
                                 k1=config.k1, b=config.b) for c in counts]
        if any(r is None for r in ranked):
            continue
        fused = [fusion_mod.fuse(vec_rows[i], vec_dists[i].astype(np.float64) + offset,
                                 ranked[i][0], ranked[i][1], k, fusion)
                 for i in range(len(texts))]
        found = np.full((len(texts), k), -1, dtype=np.int64)
        dists = np.full((len(texts), k), np.inf, dtype=np.float64)
        for i, (best, scores, _) in enumerate(fused):
            found[i, :len(best)] = best
            dists[i, :len(best)] = -np.asarray(scores, dtype=np.float64)
        results = reads.hits(env, col._prefix, "ip", rows, found, dists, fields)
        if results is None or any(len(r) != len(f[0]) for r, f in zip(results, fused)):
            continue  # renumbered, or a hit deleted meanwhile: its sides would not align
        for r, (best, _, sides) in zip(results, fused):
            r._with_sides([sides[row] for row in best])
        break
    if explain:
        lists = [] if eligible <= 0 else [
            {"vector": [int(x) for x in vec_rows[i] if x >= 0],
             "text": ranked[i][0].tolist(),
             "fused": [{"row": row, "score": score, **sides[row]}
                       for row, score in zip(best, scores)]}
            for i, (best, scores, sides) in enumerate(fused)]
        report = reads.hybrid_report(plan if eligible > 0 else None, fusion, n_cand, counts,
                                     lists, node, selection, rows.live, t0, t1)
        for r in results:
            r.explain = report
    return results[0] if single else results
