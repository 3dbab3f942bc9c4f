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
from .results import Hit, Record, Records, Results


def restore(archive: "str | os.PathLike[str]", dest_dir: "str | os.PathLike[str]", *,
            progress: "bool | object" = False) -> dict:
    """Restores a ``db.backup()`` archive into the new directory ``dest_dir`` and returns the
    archive's manifest. Every member's sha256 is verified before anything appears at
    ``dest_dir``; a corrupt or truncated archive raises ``ArchiveError`` and writes nothing.

    >>> vecdb.restore("nightly.vdb.tar.zst", "./restored.vdb")  # doctest: +SKIP
    """
    from .io.backup import restore as _restore
    return _restore(archive, dest_dir, progress=progress)

__version__ = "0.1.0"

__all__ = ["open", "restore", "Database", "Collection", "HNSW", "IVFPQ", "SQ8", "PQ", "Flat", "RRF",
           "Weighted", "BM25", "Hit",
           "Record", "Records", "Results", "__version__", *_error_names]
