"""Rank fusion of hybrid queries (vecdb/query/fusion.py): RRF and weighted fusion against
direct computations."""

import numpy as np
import pytest

import vecdb
from vecdb.query.fusion import fuse

V_ROWS = np.array([10, 11, 12, -1])          # vector side, best first (-1: unused slot)
V_DIST = np.array([0.1, 0.2, 0.4, np.inf])
T_ROWS = np.array([12, 13, 10])              # text side, best first
T_SCORE = np.array([9.0, 3.0, 1.0])


def test_rrf_sums_reciprocal_ranks():
    rows, scores, sides = fuse(V_ROWS, V_DIST, T_ROWS, T_SCORE, 10, vecdb.RRF(k=60))
    expected = {10: 1 / 61 + 1 / 63, 11: 1 / 62, 12: 1 / 63 + 1 / 61, 13: 1 / 62}
    assert rows == sorted(expected, key=lambda r: (-expected[r], r))  # ties: smaller row
    assert scores == pytest.approx([expected[r] for r in rows])
    assert sides[12] == {"vector": {"rank": 3, "distance": 0.4},
                         "text": {"rank": 1, "score": 9.0}}
    assert sides[11] == {"vector": {"rank": 2, "distance": 0.2}}
    assert sides[13] == {"text": {"rank": 2, "score": 3.0}}


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_weighted_scales_each_side_to_unit_range(alpha):
    rows, scores, _ = fuse(V_ROWS, V_DIST, T_ROWS, T_SCORE, 10, vecdb.Weighted(alpha=alpha))
    v = {10: 1.0, 11: (0.4 - 0.2) / 0.3, 12: 0.0}          # -distance, min-max scaled
    t = {12: 1.0, 13: (3.0 - 1.0) / 8.0, 10: 0.0}
    expected = {r: alpha * v.get(r, 0) + (1 - alpha) * t.get(r, 0) for r in (10, 11, 12, 13)}
    assert rows == sorted(expected, key=lambda r: (-expected[r], r))
    assert scores == pytest.approx([expected[r] for r in rows])


def test_k_cuts_and_empty_sides():
    rows, _, _ = fuse(V_ROWS, V_DIST, T_ROWS, T_SCORE, 2, vecdb.RRF())
    assert len(rows) == 2
    empty = np.empty(0, dtype=np.int64)
    rows, scores, sides = fuse(empty, np.empty(0), T_ROWS, T_SCORE, 5, vecdb.Weighted())
    assert rows == [12, 13, 10] and set(sides[12]) == {"text"}
    assert fuse(empty, np.empty(0), empty, np.empty(0), 5, vecdb.RRF()) == ([], [], {})


def test_bad_fusion_configs():
    with pytest.raises(vecdb.InvalidArgumentError, match="alpha"):
        vecdb.Weighted(alpha=1.5)
    with pytest.raises(vecdb.InvalidArgumentError, match="RRF.k"):
        vecdb.RRF(k=-1)
