"""Selection: the rows of a collection generation that a filter allows, as a bitset.

``select(env, prefix, rows, node)`` catches the filter columns up with LMDB, evaluates the
parsed filter (query/evaluate.py, cached per (filter, W, E)), and intersects it with the
live rows of the RowSet's snapshot. The result carries the exact number of allowed rows,
which the planner needs before it searches. Both the filter's bitset (per (filter, W, E))
and the final selection (per (filter, W, live rows, E)) are cached: a filter repeated over many
queries is evaluated once.

Invariants:
 1. ``bits`` has a bit per row of [0, n_rows) (n_rows <= the RowSet snapshot's W, and <= the
    columns' W), padded with zero words to at least ceil(n_rows / 64) words: tombstoned rows
    and rows past n_rows are never set, so the C searches need no deny bitset with it.
 2. ``matches`` == popcount(bits).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Tuple

import numpy as np

from .. import _native
from .evaluate import evaluate
from .filters import Node

if TYPE_CHECKING:  # pragma: no cover
    from ..rowset import RowSet


@dataclass
class Selection:
    """Rows allowed by a filter (see the module docstring)."""

    bits: np.ndarray      # uint64 bitset
    n_rows: int           # rows [0, n_rows) are covered
    matches: int          # allowed live rows
    seconds: float        # time to catch up and evaluate
    cached: bool          # the filter's evaluation came from the cache

    def rows(self) -> np.ndarray:
        """The allowed rows, ascending (int64)."""
        mask = np.unpackbits(self.bits.view(np.uint8), count=self.n_rows, bitorder="little")
        return np.flatnonzero(mask).astype(np.int64)

    def contains(self, row: int) -> bool:
        return row < self.n_rows and bool((int(self.bits[row >> 6]) >> (row & 63)) & 1)


def pack(mask: np.ndarray) -> np.ndarray:
    """A bool mask as a uint64 bitset (bit r = word r // 64, bit r % 64), zero-padded."""
    packed = np.packbits(mask, bitorder="little")
    words = (len(mask) + 63) // 64
    out = np.zeros(max(words, 1), dtype=np.uint64)
    out.view(np.uint8)[: len(packed)] = packed
    return out


def select(env: Any, prefix: bytes, rows: "RowSet", node: Node) -> Selection:
    """The live rows of rows' snapshot that node allows. Raises GenerationMoved (from the
    filter columns) when a vacuum replaced the generation meanwhile."""
    t0 = time.perf_counter()
    watermark, live, deny = rows.snapshot()
    known = (watermark, rows.edit_seq)
    # repr tells True from 1 from 1.0, which are equal (and hash alike) as tuple members
    node_key = repr(node)
    final_key = (node_key, watermark, live, known[1])

    def evaluated(store: Any) -> Tuple[Any, int, bool]:
        done = rows.filters.recall(final_key)  # this filter on this very snapshot
        if done is not None:
            return done, store.watermark, True
        bits = rows.filters.recall(node_key)
        if bits is not None:
            return bits, store.watermark, True
        bits = pack(evaluate(node, store))
        rows.filters.remember(node_key, bits)
        return bits, store.watermark, False

    bits, columns_rows, cached = rows.filters.run(env, prefix, evaluated, known)
    if isinstance(bits, Selection):
        return Selection(bits.bits, bits.n_rows, bits.matches, time.perf_counter() - t0, True)
    n_rows = min(watermark, columns_rows)
    words = (n_rows + 63) // 64
    allowed = np.zeros(max(words, 1), dtype=np.uint64)
    allowed[:words] = bits[:words]
    if n_rows & 63:  # rows past n_rows in the last word
        allowed[words - 1] &= np.uint64((1 << (n_rows & 63)) - 1)
    if deny is not None:
        allowed[:words] &= ~deny[:words]
    matches = _native.bitset_count(allowed, n_rows) if n_rows else 0
    out = Selection(allowed, n_rows, matches, time.perf_counter() - t0, cached)
    if n_rows == watermark:
        rows.filters.run(env, prefix, lambda store: rows.filters.remember(final_key, out),
                         known)
    return out
