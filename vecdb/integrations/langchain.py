"""LangChain adapter: ``VecDBVectorStore``, a langchain-core ``VectorStore`` kept in one vecdb
collection (``pip install 'vecdb[langchain]'``).

    >>> import tempfile
    >>> from langchain_core.embeddings import DeterministicFakeEmbedding
    >>> from vecdb.integrations.langchain import VecDBVectorStore
    >>> with VecDBVectorStore(DeterministicFakeEmbedding(size=8), path=tempfile.mkdtemp()) as store:
    ...     ids = store.add_texts(["tokio runtime", "sourdough bread"], [{"k": 1}, {"k": 2}])
    ...     store.similarity_search("tokio runtime", k=1, filter={"k": {"$lt": 2}})[0].page_content
    'tokio runtime'

Mapping: a LangChain ``Document`` is one vecdb item: ``Document.id`` (str; a uuid4 is made for
a missing one) the id, ``page_content`` the document, ``metadata`` the metadata, the vector
from the store's ``Embeddings``. Metadata takes vecdb's value types (str, int, float, bool,
None or lists of those); anything else, nested dicts included, is refused with
``InvalidMetadataError`` rather than serialized, so every stored field stays filterable and
comes back as it went in. ``filter=`` is a dict in vecdb's where-language (README
"Filters"), ``where_document=`` filters the text; searches also take ``ef=``.

Invariants:
 1. Every write is one vecdb upsert: adding an id that exists replaces it (LangChain's "add
    by id is idempotent"); a failed add writes nothing and creates no collection.
 2. The collection is created by the first write, with the dimension of its embeddings (or
    at construction when ``dim=`` is given); until then reads find nothing.
 3. ``similarity_search_with_score`` gives vecdb's distance (smaller is closer: cosine
    1 - cos, l2 squared Euclidean, ip -dot); relevance scores (``..._with_relevance_scores``)
    are the cosine similarity of unit-length embeddings under every metric, clamped to [0, 1].
 4. The store closes the Database it opened from ``path=``, never one given as ``database=``.
 5. The async methods await the embedding's async methods and run vecdb calls in an
    executor, so they never block the event loop on either.
"""

from __future__ import annotations

import numbers
import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.runnables.config import run_in_executor
    from langchain_core.vectorstores import VectorStore
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("vecdb.integrations.langchain needs langchain-core: "
                      "pip install 'vecdb[langchain]'") from e

from .. import validate
from ..collection import Collection
from ..database import Database
from ..database import open as open_database
from ..errors import (
    CollectionNotFoundError,
    DatabaseClosedError,
    FilterError,
    InvalidArgumentError,
    InvalidIdError,
)
from ..query import filters
from ..results import Hit
from ..types import METRICS
from .langchain_mmr import mmr_select, relevance_fn

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

_SEARCH_OPTIONS = ("filter", "where_document", "ef")
_DELETE_OPTIONS = ("filter", "where_document")
_WITH_VECTORS = ("metadata", "document", "vector")


def _options(kwargs: dict[str, Any], allowed: Sequence[str], method: str) -> dict[str, Any]:
    """The vecdb options among kwargs (filter -> where); unknown names are an error."""
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise InvalidArgumentError(f"{method}: unknown keyword argument(s) {unknown}; "
                                   f"accepted: {', '.join(allowed) or 'only the named parameters'}")
    where = kwargs.get("filter")
    if where is not None and not isinstance(where, dict):
        raise FilterError(f"filter: expected a dict in vecdb's where-language (e.g. "
                          f"{{'year': {{'$gte': 2020}}}}), got {type(where).__name__} {where!r}")
    opts = {"where": where, "where_document": kwargs.get("where_document")}
    filters.parse(opts["where"], opts["where_document"])  # a bad filter fails before any work
    if kwargs.get("ef") is not None:
        opts["ef"] = kwargs["ef"]
    return opts


def _id_list(ids: Any) -> list:
    if isinstance(ids, (str, bytes)):
        raise InvalidArgumentError(f"ids: expected a list of ids, got a single "
                                   f"{type(ids).__name__} {ids!r}; wrap it in a list")
    return list(ids)


def _lookup_ids(ids: Any) -> list:
    """The distinct ids of a get / delete, first occurrences in order, each checked."""
    checked = [validate.check_id(v, f"ids[{i}]") for i, v in enumerate(_id_list(ids))]
    return list(dict.fromkeys(checked))


def _document(ext_id: Any, text: str | None, metadata: dict | None) -> Document:
    return Document(id=ext_id if isinstance(ext_id, str) else str(ext_id),
                    page_content=text or "", metadata=metadata or {})


def _hit_document(hit: Hit) -> Document:
    return _document(hit.id, hit.document, hit.metadata)


class VecDBVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over the vecdb collection ``collection_name``.

    Give ``path=`` (a database directory, opened and later closed by the store) or
    ``database=`` (an open ``vecdb.Database``, left open). ``metric``: "cosine" (the default
    for a new collection), "ip" or "l2"; an existing collection keeps its own (asking for
    another is an error). ``dim``, ``index``, ``quantization``, ``text_index`` apply when the
    collection is created; ``durability`` when the store opens ``path``.

    >>> store = VecDBVectorStore(embeddings, path="./lc.vdb")  # doctest: +SKIP
    >>> store.add_documents([Document(page_content="hello", metadata={"lang": "en"})])  # doctest: +SKIP
    ['5f0c...']
    >>> store.as_retriever(search_kwargs={"filter": {"lang": "en"}}).invoke("hi")  # doctest: +SKIP
    """

    def __init__(self, embedding: Embeddings, *,
                 path: str | os.PathLike[str] | None = None,
                 database: Database | None = None, collection_name: str = "langchain",
                 metric: str | None = None, dim: int | None = None, index: Any = None,
                 quantization: Any = None, text_index: Any = True,
                 durability: str = "full") -> None:
        if not isinstance(embedding, Embeddings):
            raise InvalidArgumentError(f"embedding: expected a langchain_core Embeddings, got "
                                       f"{type(embedding).__name__} {embedding!r}")
        if (path is None) == (database is None):
            raise InvalidArgumentError("path/database: give exactly one (a database directory "
                                       "as path=, or an open vecdb.Database as database=)")
        if database is not None and not isinstance(database, Database):
            raise InvalidArgumentError(f"database: expected an open vecdb.Database, got "
                                       f"{type(database).__name__} {database!r}")
        try:
            self._name = validate.name(collection_name)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"collection_name{str(e)[4:]}") from None
        self._metric = None if metric is None else validate.choice(metric, "metric", METRICS)
        self._dim = None if dim is None else validate.dim(dim)
        self._create_options = {"index": index, "quantization": quantization,
                                "text_index": text_index}
        self._embedding = embedding
        self._lock = threading.RLock()
        self._col: Collection | None = None
        self._closed = False
        self._owns_db = database is None
        self._db = database if database is not None else open_database(path,
                                                                       durability=durability)
        try:
            self._col = self._find(self._dim)
        except BaseException:
            self.close()
            raise

    # -- lifecycle and properties ------------------------------------------------------------

    def close(self) -> None:
        """Closes the database if the store opened it (``path=``); idempotent. The store
        refuses every call afterwards."""
        self._closed = True
        if self._owns_db:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"VecDBVectorStore(collection={self._name!r}, metric={self.metric!r}, "
                f"database={self._db.path!r})")

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @property
    def database(self) -> Database:
        return self._db

    @property
    def collection(self) -> Collection | None:
        """The vecdb collection, or None before the first write created it."""
        return self._collection()

    @property
    def metric(self) -> str:
        col = self._col
        return col.metric if col is not None else (self._metric or "cosine")

    def _find(self, create_dim: int | None) -> Collection | None:
        """The collection (checked against the asked metric and dim); when missing, a new one
        of dim create_dim, or None when create_dim is None."""
        try:
            col = self._db.get_collection(self._name)
        except CollectionNotFoundError:
            if create_dim is None:
                return None
            return self._db.get_or_create_collection(
                self._name, dim=create_dim, metric=self._metric or "cosine",
                **self._create_options)
        for what, asked, has in (("metric", self._metric, col.metric),
                                 ("dim", self._dim, col.dim)):
            if asked is not None and asked != has:
                raise InvalidArgumentError(f"{what}: collection {self._name!r} exists with "
                                           f"{what}={has!r}; asked for {what}={asked!r}")
        return col

    def _collection(self, create_dim: int | None = None) -> Collection | None:
        if self._closed:
            raise DatabaseClosedError(f"this VecDBVectorStore ({self._name!r}) is closed")
        col = self._col
        if col is None:
            with self._lock:
                if self._col is None:
                    self._col = self._find(create_dim)
                col = self._col
        return col

    # -- writes ------------------------------------------------------------------------------

    def _plan(self, texts: Iterable[str], metadatas: Sequence[dict | None] | None,
              ids: Sequence[str | None] | None, batch_size: int | None,
              kwargs: dict[str, Any]) -> tuple[list[str], list[dict | None], list[str], int]:
        """Checks a write before anything is embedded: (texts, metadatas, ids, batch size)."""
        _options(kwargs, (), "add_texts")
        if isinstance(texts, str):
            raise InvalidArgumentError(f"texts: expected a list of str, got a single str "
                                       f"{texts!r}; wrap it in a list")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidArgumentError(f"texts[{i}]: expected str, got "
                                           f"{type(text).__name__} {text!r}")
        n = len(texts)
        metas = validate.metadatas(None if metadatas is None else list(metadatas), n)
        given = [None] * n if ids is None else _id_list(ids)
        if len(given) != n:
            raise InvalidArgumentError(f"ids: got {len(given)} ids for {n} texts")
        id_list = []
        for i, v in enumerate(given):
            if v is not None and not isinstance(v, str):
                raise InvalidIdError(f"ids[{i}]: LangChain ids are str, got "
                                     f"{type(v).__name__} {v!r}")
            id_list.append(v or str(uuid.uuid4()))
        if n:
            validate.ids(id_list)
        size = (n or 1) if batch_size is None else validate.positive_int(batch_size, "batch_size")
        return texts, metas, id_list, size

    def _store(self, texts: list[str], metas: list[dict | None], ids: list[str],
               vectors: Any) -> list[str]:
        """Upserts a planned batch with its embeddings (invariants 1 and 2)."""
        if not texts:
            self._collection()
            return []
        n = len(texts)
        try:
            arr = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise InvalidArgumentError(f"embedding: returned vectors that are not an [n, dim] "
                                       f"array of numbers ({e})") from None
        if arr.ndim != 2 or arr.shape[0] != n:
            raise InvalidArgumentError(f"embedding: returned an array of shape {arr.shape} for "
                                       f"{n} texts; expected [{n}, dim]")
        col = self._collection()
        if col is None:  # checked in full first, so that a failed add creates nothing
            validate.vectors(arr, n, arr.shape[1], normalize=(self._metric or "cosine")
                             == "cosine", name="embedding")
            col = self._collection(create_dim=arr.shape[1])
        col.upsert(ids, arr, metadatas=metas, documents=texts)
        return ids

    @staticmethod
    def _batches(texts: list[str], size: int) -> list[list[str]]:
        return [texts[s:s + size] for s in range(0, len(texts), size)]

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, batch_size: int | None = None,
                  **kwargs: Any) -> list[str]:
        """Embeds texts and upserts them with their metadatas; returns their ids (given ones
        kept, missing ones made as uuid4 strings). ``batch_size``: texts per embedding call
        (default: all at once); the write is one batch either way.

        >>> store.add_texts(["a", "b"], [{"n": 1}, {"n": 2}], ids=["1", "2"])  # doctest: +SKIP
        ['1', '2']
        """
        texts, metas, id_list, size = self._plan(texts, metadatas, ids, batch_size, kwargs)
        vectors: list[list[float]] = []
        for chunk in self._batches(texts, size):
            vectors.extend(self._embedding.embed_documents(chunk))
        return self._store(texts, metas, id_list, vectors)

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                         ids: list[str | None] | None = None,
                         batch_size: int | None = None, **kwargs: Any) -> list[str]:
        """``add_texts`` awaiting the embedding's ``aembed_documents``."""
        texts, metas, id_list, size = self._plan(texts, metadatas, ids, batch_size, kwargs)
        vectors: list[list[float]] = []
        for chunk in self._batches(texts, size):
            vectors.extend(await self._embedding.aembed_documents(chunk))
        return await run_in_executor(None, self._store, texts, metas, id_list, vectors)

    @staticmethod
    def _unpack(documents: Sequence[Document], kwargs: dict[str, Any]
                ) -> tuple[list[str], list[dict], list[str | None]]:
        """(texts, metadatas, ids) of documents; ``ids=`` in kwargs wins over Document.id."""
        docs = list(documents)
        for i, doc in enumerate(docs):
            if not isinstance(doc, Document):
                raise InvalidArgumentError(f"documents[{i}]: expected a langchain_core "
                                           f"Document, got {type(doc).__name__} {doc!r}")
        ids = kwargs.pop("ids", None)
        if ids is None:
            ids = [doc.id for doc in docs]
        return [d.page_content for d in docs], [d.metadata for d in docs], ids

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upserts documents (``ids=`` or each ``Document.id``; uuid4 strings for missing
        ones) and returns their ids; the documents themselves are not changed."""
        texts, metas, ids = self._unpack(documents, kwargs)
        return self.add_texts(texts, metas, ids=ids, **kwargs)

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """``add_documents`` awaiting the embedding's ``aembed_documents``."""
        texts, metas, ids = self._unpack(documents, kwargs)
        return await self.aadd_texts(texts, metas, ids=ids, **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Deletes the given ids (unknown ones are ignored), or the items matching ``filter=``
        / ``where_document=`` (with ids too: the ids that match), or, given neither, every
        item (LangChain's contract for ``delete()``). One vecdb batch; returns True.

        >>> store.delete(["1", "2"])  # doctest: +SKIP
        True
        """
        opts = _options(kwargs, _DELETE_OPTIONS, "delete")
        id_list = None if ids is None else _lookup_ids(ids)
        col = self._collection()
        if col is None or id_list == []:
            return True
        if id_list is None and opts["where"] is None and opts["where_document"] is None:
            id_list = [r.id for r in col.get(include=())]
            if not id_list:
                return True
        col.delete(id_list, **opts)
        return True

    def delete_collection(self) -> None:
        """Drops the collection and all its items; the next write creates it again."""
        with self._lock:
            if self._collection() is not None:
                self._db.drop_collection(self._name)
            self._col = None

    # -- reads -------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents of the ids that exist, in the order asked (a repeated id once)."""
        unique = _lookup_ids(ids)
        col = self._collection()
        if col is None or not unique:
            return []
        return [_document(r.id, r.document, r.metadata) for r in col.get(ids=unique)]

    def _query(self, embedding: Any, k: int, opts: dict[str, Any],
               include: tuple[str, ...] = ("metadata", "document")) -> Sequence[Hit]:
        k = validate.k(k)
        col = self._collection()
        if col is None:
            return []
        return col.query(np.asarray(embedding, dtype=np.float32), k=k, include=include, **opts)

    def similarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        """(document, distance) of the k nearest items, closest first (invariant 3)."""
        opts = _options(kwargs, _SEARCH_OPTIONS, "similarity_search")
        return [(_hit_document(h), float(h.distance)) for h in self._query(embedding, k, opts)]

    def similarity_search_with_score(self, query: str, k: int = 4,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """(document, distance) of the k items nearest to query's embedding, closest first.

        >>> store.similarity_search_with_score("rust", k=2, filter={"year": 2024})  # doctest: +SKIP
        [(Document(id='7', ...), 0.12), ...]
        """
        _options(kwargs, _SEARCH_OPTIONS, "similarity_search")
        return self.similarity_search_with_score_by_vector(
            self._embedding.embed_query(query), k, **kwargs)

    async def asimilarity_search_with_score(self, query: str, k: int = 4,
                                            **kwargs: Any) -> list[tuple[Document, float]]:
        """``similarity_search_with_score`` awaiting the embedding's ``aembed_query``."""
        _options(kwargs, _SEARCH_OPTIONS, "similarity_search")
        vector = await self._embedding.aembed_query(query)
        return await run_in_executor(None, self.similarity_search_with_score_by_vector,
                                     vector, k, **kwargs)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The k documents nearest to query's embedding (``filter=``, ``where_document=``,
        ``ef=`` as in vecdb), closest first."""
        return [d for d, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """``similarity_search`` awaiting the embedding's ``aembed_query``."""
        return [d for d, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    **kwargs: Any) -> list[Document]:
        """The k documents nearest to an embedding vector, closest first."""
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distance -> relevance in [0, 1] for this metric (invariant 3)."""
        return relevance_fn(self.metric)

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4,
                                                fetch_k: int = 20, lambda_mult: float = 0.5,
                                                **kwargs: Any) -> list[Document]:
        """k documents chosen by maximal marginal relevance among the max(k, fetch_k) nearest
        (cosine similarity for relevance and redundancy; lambda_mult 1: plain similarity
        order, 0: most diverse), in the order chosen."""
        opts = _options(kwargs, _SEARCH_OPTIONS, "max_marginal_relevance_search")
        k = validate.k(k)
        fetch_k = validate.positive_int(fetch_k, "fetch_k")
        if isinstance(lambda_mult, bool) or not isinstance(lambda_mult, numbers.Real) or \
                not 0.0 <= lambda_mult <= 1.0:
            raise InvalidArgumentError(f"lambda_mult: expected a number in [0, 1], got "
                                       f"{lambda_mult!r}")
        hits = self._query(embedding, max(k, fetch_k), opts, _WITH_VECTORS)
        if not hits:
            return []
        chosen = mmr_select(np.asarray(embedding, dtype=np.float64),
                            np.stack([h.vector for h in hits]), k, float(lambda_mult))
        return [_hit_document(hits[i]) for i in chosen]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5,
                                      **kwargs: Any) -> list[Document]:
        """``max_marginal_relevance_search_by_vector`` of query's embedding.

        >>> store.max_marginal_relevance_search("rivers", k=3, fetch_k=20)  # doctest: +SKIP
        """
        _options(kwargs, _SEARCH_OPTIONS, "max_marginal_relevance_search")
        return self.max_marginal_relevance_search_by_vector(
            self._embedding.embed_query(query), k, fetch_k, lambda_mult, **kwargs)

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5,
                                             **kwargs: Any) -> list[Document]:
        """``max_marginal_relevance_search`` awaiting the embedding's ``aembed_query``."""
        _options(kwargs, _SEARCH_OPTIONS, "max_marginal_relevance_search")
        vector = await self._embedding.aembed_query(query)
        return await run_in_executor(None, self.max_marginal_relevance_search_by_vector,
                                     vector, k, fetch_k, lambda_mult, **kwargs)

    # -- construction from texts -------------------------------------------------------------

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings,
                   metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                   **kwargs: Any) -> VecDBVectorStore:
        """A store (``kwargs``: the constructor's, ``path=`` or ``database=`` required, plus
        ``batch_size``) holding texts; if adding fails the store is closed again.

        >>> store = VecDBVectorStore.from_texts(["a", "b"], embeddings, path="./lc.vdb")  # doctest: +SKIP
        """
        batch_size = kwargs.pop("batch_size", None)
        store = cls(embedding, **kwargs)
        try:
            store.add_texts(texts, metadatas, ids=ids, batch_size=batch_size)
        except BaseException:
            store.close()
            raise
        return store


__all__ = ["VecDBVectorStore"]
