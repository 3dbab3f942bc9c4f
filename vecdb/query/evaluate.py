"""Evaluation of a parsed filter (query/filters.py) to a row mask, from the filter columns.

``evaluate(node, store)`` returns a bool array over the store's rows [0, W): one numpy pass
per predicate over a field's entries (storage/columns.py), never a payload read. The rules
are those of the filters.py docstring; the numbered notes below say how they map to arrays.

 1. A predicate first yields a mask over the field's *entries* (dense: one per row; sparse:
    one per row that has the field), then ``_to_rows`` spreads it over rows; rows without
    the field stay False, which is rule 8 (missing matches nothing but $exists false).
 2. Numbers compare exactly across int and float: an int column against a float bound uses
    the integer floor/ceil of the bound; a float column against an int bound compares with
    the nearest float and settles ties with an exact Python comparison. Bounds outside the
    int64 range turn into "all" or "none".
 3. Strings compare by code for equality and by rank in the field's sorted dictionary for
    ranges; a kind test always guards a code lookup (a code means nothing in another kind).
 4. When a field's counts show every entry has one kind, the kind test is skipped.
"""

from __future__ import annotations

import bisect
import math
from typing import Optional, Sequence

import numpy as np

from ..storage.columns import BOOL, FLOAT, INT, LIST, MISSING, STR, ColumnStore, Field
from .filters import INT64_MAX, INT64_MIN, Node


def evaluate(node: Node, store: ColumnStore) -> np.ndarray:
    """Bool mask over rows [0, store.watermark) of the rows matching node."""
    n = store.watermark
    tag = node[0]
    if tag == "all":
        return np.ones(n, dtype=bool)
    if tag == "and" or tag == "or":
        children = node[1]
        out = evaluate(children[0], store)
        for child in children[1:]:
            if tag == "and":
                out &= evaluate(child, store)
            else:
                out |= evaluate(child, store)
        return out
    if tag == "not":
        return ~evaluate(node[1], store)
    if tag == "doc":
        mask = store.text.rows_containing(node[2], n)
        return mask if node[1] == "contains" else ~mask
    field = store.field(node[1])
    if field is None:  # no row has the field
        none = np.zeros(n, dtype=bool)
        return ~none if tag == "exists" and not node[2] else none
    kinds, vals, rows = field.entries(n)
    total = n if rows is None else len(kinds)
    if tag == "exists":
        mask = _to_rows(_present(kinds, field, total), rows, n)
        return mask if node[2] else ~mask
    if tag == "cmp":
        op, value = node[2], node[3]
        if op == "ne":
            entries = _present(kinds, field, total) & ~_compare(kinds, vals, field, "eq", value)
        else:
            entries = _compare(kinds, vals, field, op, value)
    elif tag == "in":
        entries = _member(kinds, vals, field, node[2])
    elif tag == "nin":
        entries = _present(kinds, field, total) & ~_member(kinds, vals, field, node[2])
    elif tag == "contains":
        entries = _contains(kinds, vals, field, node[2])
    else:  # pragma: no cover - parse() produces no other tags
        raise ValueError(f"unknown filter node {node!r}")
    return _to_rows(entries, rows, n)


# -- entries -> rows ------------------------------------------------------------------------

def _to_rows(entries: np.ndarray, rows: Optional[np.ndarray], n: int) -> np.ndarray:
    if rows is None:  # dense: entry i is row i (the column may end before the last rows)
        if len(entries) == n:
            return entries
        out = np.zeros(n, dtype=bool)
        out[: len(entries)] = entries
        return out
    out = np.zeros(n, dtype=bool)
    out[rows[entries]] = True
    return out


def _present(kinds: np.ndarray, field: Field, total: int) -> np.ndarray:
    if field.present() == total:
        return np.ones(len(kinds), dtype=bool)
    return kinds != MISSING


def _kind(kinds: np.ndarray, field: Optional[Field], kind: int) -> Optional[np.ndarray]:
    """Mask of entries of that kind; None when every entry has it (note 4)."""
    if field is not None and field.counts[kind] == len(kinds):
        return None
    return kinds == kind


def _and(kind_mask: Optional[np.ndarray], mask: np.ndarray) -> np.ndarray:
    return mask if kind_mask is None else kind_mask & mask


def _has(field: Optional[Field], kind: int) -> bool:
    return field is None or bool(field.counts[kind])


# -- predicates over entries (field=None: list elements, which keep no counts) -------------

def _compare(kinds: np.ndarray, vals: np.ndarray, field: Optional[Field], op: str,
             value: object, dictionary: Optional[object] = None) -> np.ndarray:
    """Entries whose single value satisfies `value op`-comparison (op: eq gt gte lt lte)."""
    none = np.zeros(len(kinds), dtype=bool)
    if type(value) is bool:  # parse() allows bools with eq only
        return _and(_kind(kinds, field, BOOL), vals == int(value)) if _has(field, BOOL) else none
    if type(value) is str:
        return _compare_str(kinds, vals, field, op, value, dictionary) \
            if _has(field, STR) else none
    out = none
    if _has(field, INT):
        m = _int_compare(vals, op, value)
        if m is not None:
            out = _and(_kind(kinds, field, INT), m)
    if _has(field, FLOAT):
        m = _float_compare(vals.view(np.float64), op, value)
        if m is not None:
            out = out | _and(_kind(kinds, field, FLOAT), m)
    return out


def _compare_str(kinds: np.ndarray, vals: np.ndarray, field: Optional[Field], op: str,
                 value: str, dictionary: Optional[object]) -> np.ndarray:
    d = dictionary if dictionary is not None else field.dictionary
    kind_mask = _kind(kinds, field, STR)
    if op == "eq":
        code = d.codes.get(value)
        if code is None:
            return np.zeros(len(kinds), dtype=bool)
        return _and(kind_mask, vals == code)
    rank, ordered = d.ranks()
    if op in ("lt", "gte"):
        cut = bisect.bisect_left(ordered, value)
    else:
        cut = bisect.bisect_right(ordered, value)
    codes = vals if kind_mask is None else np.where(kind_mask, vals, 0)
    ranks = rank[codes] if len(rank) else np.zeros(len(kinds), dtype=np.int64)
    m = ranks < cut if op in ("lt", "lte") else ranks >= cut
    return _and(kind_mask, m)


def _int_compare(vals: np.ndarray, op: str, value: object) -> Optional[np.ndarray]:
    """Mask of int64 vals satisfying the comparison with a number (note 2); None = none."""
    if type(value) is float:
        if op == "eq":
            if not value.is_integer():
                return None
            t = int(value)
        elif op in ("gt", "lte"):
            t = math.floor(value)
        else:
            t = math.ceil(value)
    else:
        t = value
    all_ = np.ones(len(vals), dtype=bool)
    if op == "eq":
        return vals == t if INT64_MIN <= t <= INT64_MAX else None
    if op == "gt":
        return None if t >= INT64_MAX else all_ if t < INT64_MIN else vals > t
    if op == "gte":
        return None if t > INT64_MAX else all_ if t <= INT64_MIN else vals >= t
    if op == "lt":
        return None if t <= INT64_MIN else all_ if t > INT64_MAX else vals < t
    return None if t < INT64_MIN else all_ if t >= INT64_MAX else vals <= t  # lte


def _float_compare(f: np.ndarray, op: str, value: object) -> Optional[np.ndarray]:
    """Mask of float64 values satisfying the comparison with a number (note 2)."""
    if type(value) is float:
        fv, exact = value, True
    else:
        fv = float(value)
        exact = fv == value  # exact int/float comparison in Python
    if op == "eq":
        return f == fv if exact else None
    if op == "gt":
        return f >= fv if fv > value else f > fv
    if op == "gte":
        return f >= fv if fv >= value else f > fv
    if op == "lt":
        return f <= fv if fv < value else f < fv
    return f <= fv if fv <= value else f < fv  # lte


def _member(kinds: np.ndarray, vals: np.ndarray, field: Optional[Field],
            values: Sequence[object], dictionary: Optional[object] = None) -> np.ndarray:
    """Entries equal to one of values ($in)."""
    out = np.zeros(len(kinds), dtype=bool)
    if not values:
        return out
    d = dictionary if dictionary is not None else field.dictionary
    bools = [int(v) for v in values if type(v) is bool]
    codes = [d.codes[v] for v in values if type(v) is str and v in d.codes]
    numbers = [v for v in values if type(v) in (int, float)]
    ints = [int(v) for v in numbers
            if (type(v) is int or v.is_integer()) and INT64_MIN <= int(v) <= INT64_MAX]
    floats = [float(v) for v in numbers if float(v) == v]
    if codes and _has(field, STR):  # a lookup table over the dictionary's codes
        lut = np.zeros(len(d.strings), dtype=bool)
        lut[codes] = True
        kind_mask = _kind(kinds, field, STR)
        out |= _and(kind_mask, lut[vals if kind_mask is None else np.where(kind_mask, vals, 0)])
    for kind, targets, column in ((BOOL, bools, vals), (INT, ints, vals),
                                  (FLOAT, floats, vals.view(np.float64))):
        if targets and _has(field, kind):
            out |= _and(_kind(kinds, field, kind), _isin(column, targets))
    return out


def _isin(column: np.ndarray, targets: list) -> np.ndarray:
    """column == any of targets: a few compares for short lists, np.isin for long ones."""
    if len(targets) <= 8:
        m = column == targets[0]
        for t in targets[1:]:
            m |= column == t
        return m
    return np.isin(column, np.asarray(targets, dtype=column.dtype))


def _contains(kinds: np.ndarray, vals: np.ndarray, field: Field, value: object) -> np.ndarray:
    """Entries whose value is a list holding an element equal to value."""
    if not field.counts[LIST] or not field.n_lists:
        return np.zeros(len(kinds), dtype=bool)
    owner, ekinds, evals = field.elements()
    em = _compare(ekinds, evals, None, "eq", value, field.dictionary)
    hit = np.zeros(field.n_lists, dtype=bool)
    hit[owner[em]] = True
    is_list = _kind(kinds, field, LIST)
    ids = vals if is_list is None else np.where(is_list, vals, 0)
    return _and(is_list, hit[ids])
