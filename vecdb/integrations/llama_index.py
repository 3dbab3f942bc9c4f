"""vecdb as a LlamaIndex vector store: ``VecDBVectorStore`` (``pip install 'vecdb[llama-index]'``).

A ``BasePydanticVectorStore`` over one vecdb collection. It stores text (``stores_text``), so
a ``VectorStoreIndex`` on it needs no docstore: nodes come back whole from the collection,
also after the database is reopened (``VectorStoreIndex.from_vector_store``).

    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
    from vecdb.integrations.llama_index import VecDBVectorStore

    store = VecDBVectorStore(path="./rag.vdb", collection_name="notes")
    index = VectorStoreIndex(nodes, embed_model=my_embedding,
                             storage_context=StorageContext.from_defaults(vector_store=store))
    recent = MetadataFilters(filters=[MetadataFilter(key="year", value=2020, operator=">=")])
    hits = index.as_retriever(similarity_top_k=3, filters=recent).retrieve("a question")
    store.close()            # later: VectorStoreIndex.from_vector_store(store, embed_model=...)

(examples/llama_index_example.py runs this end to end, offline.)

Storage (llama_index_nodes.py): node id -> vecdb id, node text -> document, filterable user
metadata flat -> metadata, beside the serialized node and its ref_doc_id. Filters
(llama_index_filters.py): MetadataFilters, nested, -> where / where_document.

Query modes: DEFAULT (k nearest), MMR (``mmr_threshold`` from the query or the retriever's
``vector_store_kwargs``; reordered among the best max(4k, 20) hits), TEXT_SEARCH (vecdb's BM25
over the node texts, ``query_str``; ``sparse_top_k`` or ``similarity_top_k`` hits) and HYBRID
(vector + BM25 fused by vecdb: ``alpha`` given -> ``vecdb.Weighted(alpha)``, 1 = vector only,
else ``vecdb.RRF()``; ``hybrid_top_k`` or ``similarity_top_k`` hits). ``doc_ids`` restricts to
nodes of those documents; a non-empty ``node_ids`` to those nodes (DEFAULT and MMR: scored
exactly; an empty one restricts nothing, as ``VectorStoreIndex.as_retriever()`` passes []).
Other modes (SPARSE, SEMANTIC_HYBRID, SVM, regressions) raise InvalidArgumentError.

Invariants:
 1. The store owns (and ``close()`` closes) the database only if it opened it from ``path``;
    a ``database=`` handle stays open.
 2. The collection is created with ``dim`` (when given) at construction, else by the first
    ``add`` from its first embedding; an existing one must match ``dim`` and ``metric``.
 3. ``add`` is one vecdb upsert: all nodes or none (a collection it created for them is
    dropped again if the write fails); re-adding a node id replaces that node.
 4. Bad filters and arguments raise before anything is read or written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

try:
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("vecdb.integrations.llama_index needs llama-index-core: "
                      "pip install 'vecdb[llama-index]'") from e

import numpy as np

from .. import validate
from ..config import RRF, Weighted
from ..database import Database
from ..database import open as open_database
from ..errors import CollectionNotFoundError, InvalidArgumentError
from ..types import METRICS
from .llama_index_filters import to_where
from .llama_index_nodes import (
    REF_DOC_KEY,
    check_ids,
    check_threshold,
    mmr_order,
    node_record,
    record_node,
    scores,
)

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

__all__ = ["VecDBVectorStore"]

Mode = VectorStoreQueryMode
SUPPORTED_MODES = (Mode.DEFAULT, Mode.MMR, Mode.TEXT_SEARCH, Mode.HYBRID)
_ROWS = ("metadata", "document")
Where = Optional[dict[str, Any]]


class VecDBVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store over the vecdb collection ``collection_name`` of the database
    at ``path`` (opened, and closed by ``close()``) or of an open ``database``.

    >>> store = VecDBVectorStore(path="./rag.vdb", dim=384)  # doctest: +SKIP
    >>> store.add(nodes_with_embeddings)                      # doctest: +SKIP
    ['node-1', 'node-2']
    """

    stores_text: bool = True
    flat_metadata: bool = False
    path: str
    collection_name: str = "llama_index"
    dim: Optional[int] = None  # noqa: UP045 - pydantic evaluates field types (Python 3.9)
    metric: str = "cosine"

    _db: Any = PrivateAttr(default=None)
    _owns_db: bool = PrivateAttr(default=False)
    _collection: Any = PrivateAttr(default=None)

    def __init__(self, path: Any | None = None, collection_name: str = "llama_index",
                 dim: int | None = None, metric: str = "cosine", *,
                 database: Database | None = None) -> None:
        if (path is None) == (database is None):
            raise InvalidArgumentError("path/database: give exactly one: the path of a "
                                       f"database directory or an open vecdb.Database (got "
                                       f"path={path!r}, database={database!r})")
        if database is not None and not isinstance(database, Database):
            raise InvalidArgumentError(f"database: expected an open vecdb.Database, got "
                                       f"{type(database).__name__}")
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise InvalidArgumentError(f"path: expected str or os.PathLike, got {path!r}")
        name = validate.name(collection_name)
        dim = None if dim is None else validate.dim(dim)
        metric = validate.choice(metric, "metric", METRICS)
        super().__init__(path=os.fspath(path) if database is None else database.path,
                         collection_name=name, dim=dim, metric=metric)
        self._owns_db = database is None
        self._db = open_database(path) if database is None else database
        try:
            self._db._check_open()
            col = self._existing()
            if col is None and dim is not None and not self._db.readonly:
                self._collection = self._db.get_or_create_collection(name, dim=dim,
                                                                     metric=metric)
        except BaseException:
            self.close()
            raise

    @classmethod
    def class_name(cls) -> str:
        return "VecDBVectorStore"

    # -- handles -----------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The vecdb ``Collection`` (None until the first ``add`` creates it)."""
        return self._existing()

    @property
    def database(self) -> Database:
        """The vecdb ``Database`` the store works on."""
        return self._db

    def close(self) -> None:
        """Closes the database if the store opened it (from ``path``); idempotent."""
        if self._owns_db and self._db is not None:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _existing(self) -> Any:
        """The collection, looked up until it exists; checks dim and metric (invariant 2)."""
        if self._collection is None:
            try:
                col = self._db.get_collection(self.collection_name)
            except CollectionNotFoundError:
                return None
            if (self.dim is not None and col.dim != self.dim) or col.metric != self.metric:
                raise InvalidArgumentError(
                    f"dim/metric: collection {self.collection_name!r} exists with "
                    f"dim={col.dim}, metric={col.metric!r}; the store asked for "
                    f"dim={self.dim!r}, metric={self.metric!r}")
            self._collection = col
            self.dim = col.dim
        return self._collection

    # -- writes ------------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Stores nodes that carry embeddings (replacing nodes of the same id); returns their
        ids. All or nothing (invariant 3)."""
        items = [node_record(node, i) for i, node in enumerate(nodes)]
        if not items:
            return []
        col = self._existing()
        dim = col.dim if col is not None else self.dim or len(items[0][1])
        for i, (node_id, vector, _, _) in enumerate(items):
            if len(vector) != dim:
                raise InvalidArgumentError(
                    f"nodes[{i}]: node {node_id!r} has a {len(vector)}-dim embedding; "
                    f"collection {self.collection_name!r} holds {dim}-dim vectors")
        ids = [item[0] for item in items]
        vectors = np.asarray([item[1] for item in items], dtype=np.float32)
        created = col is None
        if created:
            self._db._check_open()
            col = self._db.get_or_create_collection(self.collection_name, dim=dim,
                                                    metric=self.metric)
        try:
            col.upsert(ids, vectors, metadatas=[item[2] for item in items],
                       documents=[item[3] for item in items])
        except BaseException:
            if created and len(col) == 0:
                self._db.drop_collection(self.collection_name)
            raise
        self._collection, self.dim = col, dim
        return ids

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes every node of the source document ``ref_doc_id``."""
        if not isinstance(ref_doc_id, str):
            raise InvalidArgumentError(f"ref_doc_id: expected a str document id, got "
                                       f"{type(ref_doc_id).__name__} {ref_doc_id!r:.60}")
        col = self._existing()
        if col is not None:
            col.delete(where={REF_DOC_KEY: ref_doc_id})

    def delete_nodes(self, node_ids: list[str] | None = None,
                     filters: MetadataFilters | None = None, **delete_kwargs: Any) -> None:
        """Deletes the nodes given by id and/or matching the filters (both: the given ones
        that match). At least one must constrain: ``clear()`` deletes every node."""
        ids = None if node_ids is None else check_ids(node_ids, "node_ids")
        where, where_document = to_where(filters)
        if ids is None and where is None and where_document is None:
            raise InvalidArgumentError("delete_nodes: give node_ids and/or filters that "
                                       "select nodes; clear() deletes every node")
        col = self._existing()
        if col is not None and ids != []:
            col.delete(ids=ids, where=where, where_document=where_document)

    def clear(self) -> None:
        """Deletes every node; the collection and its settings stay."""
        col = self._existing()
        if col is not None:
            ids = [r.id for r in col.get(include=())]
            if ids:
                col.delete(ids=ids)

    # -- reads -------------------------------------------------------------------------------

    def get_nodes(self, node_ids: list[str] | None = None,
                  filters: MetadataFilters | None = None) -> list[BaseNode]:
        """The stored nodes of the given ids (in that order, unknown ids skipped) and/or
        matching the filters; every node when both are None (without embeddings)."""
        ids = None if node_ids is None else check_ids(node_ids, "node_ids")
        where, where_document = to_where(filters)
        col = self._existing()
        if col is None:
            return []
        records = col.get(ids=ids, where=where, where_document=where_document, include=_ROWS)
        return [record_node(r.id, r.metadata, r.document) for r in records]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The best nodes for a ``VectorStoreQuery`` (modes: see the module docstring), with
        their similarities (vecdb's ``score``: larger is closer) and ids."""
        mode = self._mode(query.mode)
        where, where_document = to_where(query.filters)
        if query.doc_ids is not None:
            in_docs = {REF_DOC_KEY: {"$in": check_ids(query.doc_ids, "query.doc_ids")}}
            where = in_docs if where is None else {"$and": [where, in_docs]}
        # VectorStoreIndex.as_retriever() passes node_ids=[] (its index struct lists no
        # nodes when the store keeps the text): an empty list restricts nothing.
        node_ids = check_ids(query.node_ids, "query.node_ids") if query.node_ids else None
        if node_ids is not None and mode in (Mode.TEXT_SEARCH, Mode.HYBRID):
            raise InvalidArgumentError(f"query.node_ids: not supported with mode "
                                       f"{mode.value!r} (only default and mmr)")
        k = validate.k(query.similarity_top_k)
        threshold = check_threshold(kwargs.get("mmr_threshold", query.mmr_threshold)) \
            if mode == Mode.MMR else None
        if mode != Mode.TEXT_SEARCH and query.query_embedding is None:
            raise InvalidArgumentError(f"query.query_embedding: mode {mode.value!r} needs a "
                                       f"query embedding, got None")
        if mode in (Mode.TEXT_SEARCH, Mode.HYBRID) and not isinstance(query.query_str, str):
            raise InvalidArgumentError(f"query.query_str: mode {mode.value!r} needs the query "
                                       f"text, got {query.query_str!r:.60}")
        col = self._existing()
        if col is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        filters = {"where": where, "where_document": where_document}
        if mode == Mode.TEXT_SEARCH:
            hits = col.query(text=query.query_str, k=query.sparse_top_k or k, **filters)
        elif mode == Mode.HYBRID:
            fusion = RRF() if query.alpha is None else Weighted(alpha=query.alpha)
            hits = col.query(query.query_embedding, text=query.query_str,
                             k=query.hybrid_top_k or k, fusion=fusion, **filters)
        else:
            return self._vector_query(col, query.query_embedding, k, node_ids, threshold,
                                      filters)
        return _result([(h.id, h.metadata, h.document, h.score) for h in hits])

    def _mode(self, mode: Any) -> VectorStoreQueryMode:
        try:
            mode = VectorStoreQueryMode(mode)
        except ValueError:
            mode = None
        if mode not in SUPPORTED_MODES:
            raise InvalidArgumentError(
                f"query.mode: {getattr(mode, 'value', mode)!r} is not supported by "
                f"VecDBVectorStore; supported: {', '.join(m.value for m in SUPPORTED_MODES)}")
        return mode

    def _vector_query(self, col: Any, embedding: Any, k: int, node_ids: list[str] | None,
                      threshold: float | None, filters: dict[str, Where]
                      ) -> VectorStoreQueryResult:
        """DEFAULT and MMR: candidates from the index (or the given node_ids, scored exactly
        here), reordered by MMR when threshold is given."""
        if node_ids is not None:
            q = validate.queries(embedding, col.dim, normalize=col.metric == "cosine")[0][0]
            records = col.get(ids=node_ids, include=(*_ROWS, "vector"), **filters)
            rows = [(r.id, r.metadata, r.document) for r in records]
            vectors = np.asarray([r.vector for r in records], dtype=np.float32)
            found = scores(col.metric, q, vectors) if rows else np.zeros(0)
            order = np.argsort(-found, kind="stable")
            if threshold is None:
                order = order[:k]
            candidates = [(*rows[j], float(found[j])) for j in order]
            vectors = vectors[order] if rows else vectors
        else:
            wanted = k if threshold is None else max(4 * k, 20)
            hits = col.query(embedding, k=wanted, include=_ROWS if threshold is None
                             else (*_ROWS, "vector"), **filters)
            candidates = [(h.id, h.metadata, h.document, h.score) for h in hits]
            q = validate.queries(embedding, col.dim, normalize=False)[0][0]
            vectors = np.asarray([h.vector for h in hits], dtype=np.float32) \
                if threshold is not None else None
        if threshold is not None and candidates:
            candidates = [candidates[j] for j in mmr_order(q, vectors, k, threshold)]
        return _result(candidates)


def _result(rows: list[tuple[Any, Any, Any, float]]) -> VectorStoreQueryResult:
    """A VectorStoreQueryResult of (id, metadata, document, score) rows, best first."""
    return VectorStoreQueryResult(nodes=[record_node(i, m, d) for i, m, d, _ in rows],
                                  similarities=[float(r[3]) for r in rows],
                                  ids=[str(r[0]) for r in rows])
