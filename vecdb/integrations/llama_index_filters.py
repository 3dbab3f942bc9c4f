"""LlamaIndex ``MetadataFilters`` translated to vecdb's where-language (query/filters.py).

Used by VecDBVectorStore (llama_index.py); imports llama-index-core, so only that module
imports it. ``to_where(filters)`` returns ``(where, where_document)`` for ``Collection.query
/ get / delete``; either may be None (no constraint).

Semantics follow LlamaIndex's in-memory reference (``vector_stores.utils.
build_metadata_filter_fn``), which the store makes exact by never storing None or [] as a
filterable field (the node keeps them in its serialized form), so "missing" covers both:
    EQ GT GTE LT LTE    $eq $gt $gte $lt $lte on a single value (not None: use IS_EMPTY)
    NE / NIN            $not ($eq / $in): a node without the field matches, as in LlamaIndex
    IN                  $in a list
    CONTAINS            a list field holds the value ($contains)
    ANY / ALL           a list field holds any / all of a non-empty list of values
    IS_EMPTY            the field is missing (or was None / []) or is ""
    TEXT_MATCH          key "text" only: the node text contains the substring (where_document
                        $contains, case-sensitive); only in the top-level AND chain, because
                        where_document is ANDed with where
    conditions          AND -> $and, OR -> $or, NOT -> none of the filters holds
                        ($not $or, LlamaIndex's reading); nested MetadataFilters at any depth
Refused with a FilterError naming the operator, key and value: TEXT_MATCH_INSENSITIVE (vecdb
matches text case-sensitively), TEXT_MATCH on a metadata key (vecdb has no substring test on
fields), TEXT_MATCH under OR / NOT, and values of the wrong shape (a list for EQ, a scalar
for IN...).

Invariants: an empty MetadataFilters (at any depth) constrains nothing, the way LlamaIndex's
reference treats an empty top level; the result always parses (vecdb.query.filters.parse).

    >>> from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
    >>> to_where(MetadataFilters(filters=[MetadataFilter(key="year", value=2020,
    ...                                                   operator=">=")]))
    ({'year': {'$gte': 2020}}, None)
"""

from __future__ import annotations

from typing import Any, Optional

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from ..errors import FilterError

TEXT_KEY = "text"  # the key a TEXT_MATCH names to search the node text
# A filter no row matches ($in [] matches nothing): the value of OR / NOT over everything.
MATCH_NOTHING: dict[str, Any] = {"_node_type": {"$in": []}}

_SCALAR_OPS = {FilterOperator.EQ: "$eq", FilterOperator.GT: "$gt", FilterOperator.GTE: "$gte",
               FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte"}
Where = Optional[dict[str, Any]]


def to_where(filters: MetadataFilters | None) -> tuple[Where, Where]:
    """(where, where_document) equal to filters (None: no constraint); FilterError if a filter
    has no where-language equivalent."""
    if filters is None:
        return None, None
    if not isinstance(filters, MetadataFilters):
        raise FilterError(f"filters: expected llama_index MetadataFilters, got "
                          f"{type(filters).__name__} {filters!r:.80}")
    texts: list[str] = []
    where = _group(filters, "filters", texts)
    where_document = None
    if texts:
        parts = [{"$contains": t} for t in texts]
        where_document = parts[0] if len(parts) == 1 else {"$and": parts}
    return where, where_document


def _group(filters: MetadataFilters, path: str, texts: list[str] | None) -> Where:
    """The where of one MetadataFilters; texts collects TEXT_MATCH values while the group is
    in the top-level AND chain (None below an OR / NOT)."""
    condition = filters.condition or FilterCondition.AND
    top_and = texts is not None and condition == FilterCondition.AND
    parts: list[Where] = []
    for i, item in enumerate(filters.filters):
        where = f"{path}[{i}]"
        if isinstance(item, MetadataFilters):
            parts.append(_group(item, where, texts if top_and else None))
        elif isinstance(item, MetadataFilter):
            if item.operator == FilterOperator.TEXT_MATCH:
                parts.append(_text_match(item, where, texts if top_and else None))
            else:
                parts.append(_leaf(item, where))
        else:
            raise FilterError(f"{where}: expected MetadataFilter or MetadataFilters, got "
                              f"{type(item).__name__} {item!r:.80}")
    if not parts:
        return None
    if condition == FilterCondition.AND:
        kept = [p for p in parts if p is not None]
        return None if not kept else kept[0] if len(kept) == 1 else {"$and": kept}
    if condition == FilterCondition.OR:
        if any(p is None for p in parts):
            return None
        return parts[0] if len(parts) == 1 else {"$or": parts}
    if condition == FilterCondition.NOT:  # none of them holds
        if any(p is None for p in parts):
            return dict(MATCH_NOTHING)
        return {"$not": parts[0] if len(parts) == 1 else {"$or": parts}}
    raise FilterError(f"{path}: condition {condition!r} has no where-language equivalent; "
                      f"expected and, or, not")


def _text_match(item: MetadataFilter, path: str, texts: list[str] | None) -> Where:
    value = item.value
    if item.key != TEXT_KEY:
        raise FilterError(f"{path}: operator text_match on key {item.key!r}: vecdb matches "
                          f"substrings of the node text only (key {TEXT_KEY!r}), not of "
                          f"metadata fields")
    if not isinstance(value, str) or not value:
        raise FilterError(f"{path}: operator text_match takes a non-empty str, got {value!r}")
    if texts is None:
        raise FilterError(f"{path}: operator text_match cannot be used under an OR or NOT "
                          f"condition (vecdb applies text filters ANDed with the metadata "
                          f"filters); put it in the top-level AND")
    texts.append(value)
    return None


def _scalar(value: Any, op: FilterOperator, key: str, path: str) -> Any:
    if value is None:
        raise FilterError(f"{path}: operator {op.value} on key {key!r} got value None; use "
                          f"operator is_empty to find nodes without a value")
    if isinstance(value, (list, tuple)):
        raise FilterError(f"{path}: operator {op.value} on key {key!r} takes a single value, "
                          f"got the list {value!r:.80}")
    return value


def _values(value: Any, op: FilterOperator, key: str, path: str, non_empty: bool) -> list:
    if not isinstance(value, (list, tuple)):
        raise FilterError(f"{path}: operator {op.value} on key {key!r} takes a list of values, "
                          f"got {type(value).__name__} {value!r:.80}")
    if non_empty and not value:
        raise FilterError(f"{path}: operator {op.value} on key {key!r} takes a non-empty list, "
                          f"got []")
    return list(value)


def _leaf(item: MetadataFilter, path: str) -> dict[str, Any]:
    key, op, value = item.key, item.operator, item.value
    if not isinstance(key, str) or not key or key.startswith("$"):
        raise FilterError(f"{path}: key must be a non-empty str not starting with '$', got "
                          f"{key!r}")
    if op in _SCALAR_OPS:
        return {key: {_SCALAR_OPS[op]: _scalar(value, op, key, path)}}
    if op == FilterOperator.NE:
        return {"$not": {key: {"$eq": _scalar(value, op, key, path)}}}
    if op == FilterOperator.IN:
        return {key: {"$in": _values(value, op, key, path, non_empty=False)}}
    if op == FilterOperator.NIN:
        return {"$not": {key: {"$in": _values(value, op, key, path, non_empty=False)}}}
    if op == FilterOperator.CONTAINS:
        return {key: {"$contains": _scalar(value, op, key, path)}}
    if op in (FilterOperator.ANY, FilterOperator.ALL):
        parts = [{key: {"$contains": v}}
                 for v in _values(value, op, key, path, non_empty=True)]
        if len(parts) == 1:
            return parts[0]
        return {"$or" if op == FilterOperator.ANY else "$and": parts}
    if op == FilterOperator.IS_EMPTY:
        return {"$or": [{key: {"$exists": False}}, {key: {"$eq": ""}}]}
    raise FilterError(f"{path}: operator {getattr(op, 'value', op)} on key {key!r} has no "
                      f"vecdb where-language equivalent"
                      + (" (text matching in vecdb is case-sensitive: use text_match)"
                         if op == FilterOperator.TEXT_MATCH_INSENSITIVE else ""))
