"""The where-language: parsing and checking filters into a small tree (evaluated elsewhere).

``where`` filters metadata; ``where_document`` filters document text. Both compile, with
``parse()``, to a tree of tuples that ``query/evaluate.py`` turns into a row mask from the
filter columns. Parsing checks everything first: a bad filter raises ``FilterError`` naming
the operator, field and value, before any work is done.

Syntax (``where``):
    {"year": 2024}                          implicit $eq
    {"year": {"$gte": 2020, "$lt": 2025}}   several operators on one field: all must hold
    {"a": 1, "b": 2}                        several fields: all must hold
    {"$and": [f, ...]}, {"$or": [f, ...]}   non-empty lists of filters, nested to any depth
    {"$not": f}                             negation of a whole filter
    operators: $eq $ne $gt $gte $lt $lte $in $nin $exists $contains
Syntax (``where_document``):
    {"$contains": "text"}, {"$not_contains": "text"}, and $and / $or / $not of those.

Semantics (the reference a plain-Python evaluator in the tests follows):
 1. Values are str, int, float or bool (numpy scalars are converted). A filter value None,
    NaN/inf, an int outside the signed 64-bit range, or a list where a single value is
    expected is a FilterError.
 2. Type classes: numbers (int and float compare numerically and exactly: 1 == 1.0, and
    2**53 + 1 != 2.0**53), str, bool. Values of different classes are never equal and never
    ordered: a str never equals a number, True never equals 1.
 3. $eq v: the row's value is a single value equal to v. $in [v, ...]: $eq one of them
    ($in [] matches nothing).
 4. $gt $gte $lt $lte v: v is a number or a str (a bool or a list is a FilterError); the
    row's value is of the same class and compares (str: Python's order, by code point).
 5. $ne v / $nin [...]: the row has the field and does not match $eq v / $in [...]: so a
    row whose value is a list or None matches $ne.
 6. $contains v: the row's value is a list holding an element that is $eq v.
 7. $exists true: the row has the field (any value, None and lists included);
    $exists false: it does not.
 8. A row missing the field matches nothing on it but $exists false (and so a $not).
 9. $not f matches exactly the rows f does not match; $and/$or as in logic.
10. where_document: $contains t holds when the row's document contains the substring t
    (case-sensitive); $not_contains t when it does not (a row without a document contains
    nothing). t must be a non-empty str.
11. where and where_document together: both must hold. ``None`` or ``{}`` filters nothing.

The tree (tuples, hashable, so a parsed filter can be cached):
    ("all",)                         every row
    ("and", (node, ...)) ("or", (node, ...)) ("not", node)
    ("cmp", field, op, value)        op in "eq" "ne" "gt" "gte" "lt" "lte"
    ("in", field, (value, ...)) ("nin", field, (value, ...))
    ("exists", field, bool) ("contains", field, value)
    ("doc", "contains" | "not_contains", text)

    >>> parse({"year": {"$gte": 2020}, "$or": [{"tag": "a"}, {"tag": {"$in": ["b", "c"]}}]})
    ('and', (('cmp', 'year', 'gte', 2020), ('or', (('cmp', 'tag', 'eq', 'a'), ('in', 'tag', ('b', 'c'))))))
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

from ..errors import FilterError

Node = tuple
ALL: Node = ("all",)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_COMPARISONS = {"$eq": "eq", "$ne": "ne", "$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
_ORDERED = ("gt", "gte", "lt", "lte")
_FIELD_OPERATORS = (*_COMPARISONS, "$in", "$nin", "$exists", "$contains")
_LOGICAL = ("$and", "$or", "$not")
_DOC_OPERATORS = {"$contains": "contains", "$not_contains": "not_contains"}


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse(where: Any, where_document: Any = None) -> Node:
    """The tree of where AND where_document (see the module docstring); ALL for no filter."""
    parts = []
    if where is not None:
        node = _filter(where, "where")
        if node != ALL:
            parts.append(node)
    if where_document is not None:
        node = _document(where_document, "where_document")
        if node != ALL:
            parts.append(node)
    return _combine("and", parts)


def _combine(op: str, parts: list) -> Node:
    if not parts:
        return ALL
    if len(parts) == 1:
        return parts[0]
    return (op, tuple(parts))


def _check_dict(where: Any, path: str) -> None:
    if not isinstance(where, dict):
        raise FilterError(f"{path}: a filter must be a dict, got {type(where).__name__} "
                          f"{_show(where)}")


def _filter(where: Any, path: str) -> Node:
    _check_dict(where, path)
    parts = []
    for key, value in where.items():
        if not isinstance(key, str) or not key:
            raise FilterError(f"{path}: field names must be non-empty str, got {_show(key)}")
        if key.startswith("$"):
            parts.append(_logical(key, value, f"{path}[{key!r}]"))
        else:
            parts.append(_field(key, value, f"{path}[{key!r}]"))
    return _combine("and", parts)


def _logical(op: str, value: Any, path: str) -> Node:
    if op not in _LOGICAL:
        hint = " (field operators go inside a field: {\"field\": {op: value}})" \
            if op in _FIELD_OPERATORS else ""
        raise FilterError(f"{path}: unknown operator {op!r}; expected one of "
                          f"{', '.join(_LOGICAL)}{hint}")
    if op == "$not":
        return ("not", _filter(value, path))
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"{path}: {op} takes a list of filters, got {type(value).__name__} "
                          f"{_show(value)}")
    if not value:
        raise FilterError(f"{path}: {op} takes a non-empty list of filters, got []")
    return (op[1:], tuple(_filter(f, f"{path}[{i}]") for i, f in enumerate(value)))


def _field(field: str, spec: Any, path: str) -> Node:
    if not isinstance(spec, dict):
        return ("cmp", field, "eq", _value(spec, path, "$eq"))
    if not spec:
        raise FilterError(f"{path}: an operator dict must hold at least one operator, got {{}}")
    parts = []
    for op, value in spec.items():
        where = f"{path}[{op!r}]"
        if op in _COMPARISONS:
            name = _COMPARISONS[op]
            v = _value(value, where, op)
            if name in _ORDERED and isinstance(v, bool):
                raise FilterError(f"{where}: {op} takes a number or a str, got bool {v!r}")
            parts.append(("cmp", field, name, v))
        elif op in ("$in", "$nin"):
            if not isinstance(value, (list, tuple, np.ndarray)) or \
                    (isinstance(value, np.ndarray) and value.ndim != 1):
                raise FilterError(f"{where}: {op} takes a list of values, got "
                                  f"{type(value).__name__} {_show(value)}")
            values = tuple(_value(v, f"{where}[{i}]", op) for i, v in enumerate(value))
            parts.append((op[1:], field, values))
        elif op == "$exists":
            if not isinstance(value, (bool, np.bool_)):
                raise FilterError(f"{where}: $exists takes true or false, got {_show(value)}")
            parts.append(("exists", field, bool(value)))
        elif op == "$contains":
            parts.append(("contains", field, _value(value, where, op)))
        elif isinstance(op, str) and op in _LOGICAL:
            raise FilterError(f"{where}: {op} combines filters and cannot be applied to field "
                              f"{field!r}; write {{{op!r}: [{{{field!r}: ...}}, ...]}}")
        else:
            raise FilterError(f"{where}: unknown operator {_show(op)} on field {field!r}; "
                              f"expected one of {', '.join(_FIELD_OPERATORS)}")
    return _combine("and", parts)


def _value(v: Any, path: str, op: str) -> Any:
    """v as a plain str, int, float or bool (rule 1), else FilterError."""
    kind = type(v)
    if kind is str or kind is bool:
        return v
    if kind is int:
        if INT64_MIN <= v <= INT64_MAX:
            return v
        raise FilterError(f"{path}: {op} value {v} is outside the signed 64-bit range")
    if kind is float:
        if math.isfinite(v):
            return v
        raise FilterError(f"{path}: {op} value must be finite, got {v!r}")
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, numbers.Integral):
        return _value(int(v), path, op)
    if isinstance(v, numbers.Real):
        return _value(float(v), path, op)
    if v is None:
        raise FilterError(f"{path}: {op} value None is not comparable; use {{'$exists': ...}}")
    if isinstance(v, (list, tuple, dict, set, np.ndarray)):
        what = "a dict" if isinstance(v, dict) else "a list"
        raise FilterError(f"{path}: {op} compares single values, got {what} {_show(v)}")
    raise FilterError(f"{path}: {op} value has unsupported type {type(v).__name__} {_show(v)}; "
                      f"allowed: str, int, float, bool")


def _document(where: Any, path: str) -> Node:
    _check_dict(where, path)
    parts = []
    for op, value in where.items():
        where_op = f"{path}[{op!r}]"
        if op in _DOC_OPERATORS:
            if not isinstance(value, str) or not value:
                raise FilterError(f"{where_op}: {op} takes a non-empty str, got {_show(value)}")
            parts.append(("doc", _DOC_OPERATORS[op], value))
        elif op == "$not":
            parts.append(("not", _document(value, where_op)))
        elif op in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise FilterError(f"{where_op}: {op} takes a non-empty list of filters, got "
                                  f"{_show(value)}")
            parts.append((op[1:], tuple(_document(f, f"{where_op}[{i}]")
                                        for i, f in enumerate(value))))
        else:
            raise FilterError(f"{where_op}: unknown operator {_show(op)}; expected one of "
                              f"$contains, $not_contains, $and, $or, $not")
    return _combine("and", parts)


def describe(node: Optional[Node]) -> str:
    """A compact one-line rendering of a tree, for explain()."""
    if node is None or node == ALL:
        return "all rows"
    tag = node[0]
    if tag in ("and", "or"):
        return "(" + f" {tag.upper()} ".join(describe(c) for c in node[1]) + ")"
    if tag == "not":
        return f"NOT {describe(node[1])}"
    if tag == "cmp":
        sym = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[node[2]]
        return f"{node[1]} {sym} {node[3]!r}"
    if tag in ("in", "nin"):
        return f"{node[1]} {'IN' if tag == 'in' else 'NOT IN'} {list(node[2])!r}"
    if tag == "exists":
        return f"{node[1]} {'EXISTS' if node[2] else 'MISSING'}"
    if tag == "contains":
        return f"{node[1]} CONTAINS {node[2]!r}"
    return f"document {'CONTAINS' if node[1] == 'contains' else 'NOT CONTAINS'} {node[2]!r}"
