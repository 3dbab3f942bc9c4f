"""LlamaIndex nodes as vecdb records and back, and the ranking helpers of VecDBVectorStore.

Used by llama_index.py (imports llama-index-core, so only that module imports it).

A node is stored as one record:
    id        node.node_id (str)
    vector    node.embedding (float32; unit length under cosine, as vecdb stores it)
    document  the node text (``get_content(MetadataMode.NONE)``): BM25, text filters
    metadata  the node's user metadata fields that vecdb can filter on, flat, plus the keys
              every LlamaIndex store writes (``vector_stores.utils.node_to_metadata_dict``):
              ``_node_content`` (the node serialized as JSON, its text left out: it is the
              document), ``_node_type``, and ``ref_doc_id`` / ``doc_id`` / ``document_id``
              (the source document id, "None" when there is none).
Invariants:
 1. A field whose value vecdb cannot filter on (a dict, a list holding a list or dict, an
    int outside int64, NaN, a key that is empty or starts with "$") is left out of the
    filterable fields, and so is a field whose value is None or []: LlamaIndex treats those
    as missing. Every field still comes back with the node: it is in ``_node_content``.
 2. ``record_node(*node_record(n)[...])`` gives back a node equal to n but for its
    embedding (None: LlamaIndex does not expect stored nodes to carry one).
 3. A record without ``_node_content`` (written to the collection by other means) comes
    back as a TextNode of its id, document and metadata.

    >>> from llama_index.core.schema import TextNode
    >>> node_id, vector, meta, text = node_record(TextNode(id_="a", text="hi",
    ...     metadata={"year": 2024, "extra": None}, embedding=[1.0, 0.0]), 0)
    >>> node_id, meta["year"], "extra" in meta, text
    ('a', 2024, False, 'hi')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.utils import (
    metadata_dict_to_node,
    node_to_metadata_dict,
)

from ..errors import InvalidArgumentError

NODE_CONTENT_KEY = "_node_content"
REF_DOC_KEY = "ref_doc_id"
_PLAIN = (str, bool)
_INT64 = (-(2**63), 2**63 - 1)


def _single(v: Any) -> bool:
    """v is a value vecdb stores and filters on (rule 1 of query/filters.py)."""
    if v is None or isinstance(v, _PLAIN):
        return True
    if isinstance(v, int):
        return _INT64[0] <= v <= _INT64[1]
    return isinstance(v, float) and math.isfinite(v)


def _filterable(key: Any, v: Any) -> bool:
    if not isinstance(key, str) or not key or key.startswith("$") or v is None:
        return False
    if isinstance(v, list):
        return bool(v) and all(_single(x) for x in v)
    return _single(v)


def node_record(node: BaseNode, i: int) -> tuple[str, list[float], dict[str, Any], str]:
    """(id, embedding, metadata, document) of nodes[i] (see the module docstring);
    InvalidArgumentError if it is not a node or has no embedding."""
    if not isinstance(node, BaseNode):
        raise InvalidArgumentError(f"nodes[{i}]: expected a llama_index BaseNode, got "
                                   f"{type(node).__name__} {node!r:.60}")
    node_id = node.node_id
    if not isinstance(node_id, str) or not node_id:
        raise InvalidArgumentError(f"nodes[{i}]: node id must be a non-empty str, got "
                                   f"{node_id!r}")
    embedding = node.embedding
    if embedding is None:
        raise InvalidArgumentError(f"nodes[{i}]: node {node_id!r} has no embedding; embed it "
                                   f"first (VectorStoreIndex does, with its embed_model)")
    full = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
    meta = {k: v for k, v in full.items() if _filterable(k, v)}
    meta[NODE_CONTENT_KEY] = full[NODE_CONTENT_KEY]
    return node_id, embedding, meta, node.get_content(metadata_mode=MetadataMode.NONE)


def record_node(record_id: Any, metadata: dict[str, Any] | None,
                document: str | None) -> BaseNode:
    """The node a stored record holds (invariants 2 and 3)."""
    if metadata and NODE_CONTENT_KEY in metadata:
        return metadata_dict_to_node(metadata, text=document)
    return TextNode(id_=str(record_id), text=document or "", metadata=dict(metadata or {}))


def scores(metric: str, query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """vecdb's score (larger is closer) of each stored row against a query prepared like
    vecdb prepares it (unit length under cosine): dot product, or minus squared L2."""
    if metric == "l2":
        diff = vectors.astype(np.float64) - query.astype(np.float64)
        return -np.einsum("ij,ij->i", diff, diff)
    return vectors.astype(np.float64) @ query.astype(np.float64)


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def mmr_order(query: np.ndarray, vectors: np.ndarray, k: int, threshold: float) -> list[int]:
    """Indices of up to k rows in maximal-marginal-relevance order: each pick maximizes
    threshold * sim(query, row) - (1 - threshold) * max sim(row, picked), cosine
    similarities (threshold 1: by relevance only; 0: by novelty only).

    >>> rows = np.array([[1, 0.9], [1, 0.95], [0.2, 1]])
    >>> mmr_order(np.array([1.0, 1.0]), rows, 2, 0.5), mmr_order(np.array([1.0, 1.0]), rows, 2, 1.0)
    ([1, 2], [1, 0])
    """
    rows = _unit(np.asarray(vectors, dtype=np.float64))
    relevance = rows @ _unit(np.asarray(query, dtype=np.float64))
    redundancy = np.zeros(len(rows))
    picked: list[int] = []
    free = np.ones(len(rows), dtype=bool)
    for _ in range(min(k, len(rows))):
        gain = threshold * relevance - (1.0 - threshold) * redundancy
        gain[~free] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        free[best] = False
        redundancy = np.maximum(redundancy, rows @ rows[best])
    return picked


def check_threshold(value: Any) -> float:
    """An MMR threshold in [0, 1] (None: 0.5, LlamaIndex's default)."""
    if value is None:
        return 0.5
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0.0 <= float(value) <= 1.0:
        raise InvalidArgumentError(f"mmr_threshold: expected a number in [0, 1], got {value!r}")
    return float(value)


def check_ids(values: Any, name: str) -> list[str]:
    """A list of str ids (node or document ids)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidArgumentError(f"{name}: expected a list of str ids, got "
                                   f"{type(values).__name__} {values!r:.60}")
    out = list(values)
    for j, v in enumerate(out):
        if not isinstance(v, str):
            raise InvalidArgumentError(f"{name}[{j}]: expected a str id, got "
                                       f"{type(v).__name__} {v!r:.60}")
    return out
