"""vecdb: an embedded vector database. Open a directory, add vectors, search. No server.

    >>> import tempfile, numpy as np, vecdb
    >>> with vecdb.open(tempfile.mkdtemp()) as db:
    ...     docs = db.create_collection("docs", dim=4, metric="cosine")
    ...     docs.add(ids=["a", "b"], vectors=np.eye(4)[:2], metadatas=[{"year": 2024}, {}])
    ...     docs.query(np.eye(4)[0], k=1)[0].id
    'a'
"""

from .collection import Collection
from .config import BM25, HNSW, IVFPQ, PQ, RRF, SQ8, Flat, Weighted
from .database import Database, open
from .errors import *  # noqa: F401,F403 - the exception types are part of the public surface
from .errors import __all__ as _error_names
from .results import Hit, Record, Results

__version__ = "0.1.0"

__all__ = ["open", "Database", "Collection", "HNSW", "IVFPQ", "SQ8", "PQ", "Flat", "RRF",
           "Weighted", "BM25", "Hit",
           "Record", "Results", "__version__", *_error_names]
