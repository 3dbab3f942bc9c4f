"""Flat (exact) index: every query scans every eligible row in C. The ground truth.

The flat index keeps no state of its own: it searches whatever rows the snapshot holds, so
adding rows costs nothing and there is nothing to checkpoint or rebuild.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .. import _native


class FlatIndex:
    """Exact k-nearest search.

    >>> import numpy as np
    >>> X = np.eye(3, dtype=np.float32)
    >>> rows, dist = FlatIndex("l2").search((X,), 30, 3, X[:1], 2, deny=None)
    >>> rows.tolist()
    [[0, 1]]
    """

    def __init__(self, kernel_metric: str) -> None:
        self.kernel_metric = kernel_metric

    def search(self, views: Sequence[np.ndarray], shift: int, n_rows: int, queries: np.ndarray,
               k: int, *, deny: Optional[np.ndarray], allow: Optional[np.ndarray] = None,
               n_threads: int = 0, stats: Optional[dict] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(rows int64 [nq, k], kernel distances float32 [nq, k]); missing slots are -1.
        A stats dict, when given, gets the "visited" and "distances" counts added."""
        return _native.flat_search(views, shift, n_rows, queries, k, self.kernel_metric,
                                   allow=allow, deny=deny, n_threads=n_threads, stats=stats)
