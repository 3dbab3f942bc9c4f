"""How the ``vecdb`` commands open databases and describe what they find.

Invariants:
 1. Commands that only read open the database with ``readonly=True``: they never take the
    writer lock, so they work while an application writes, and never create a directory.
 2. Commands that write open it writable with the user's ``--timeout``; all but ``create``,
    ``import`` and ``restore`` refuse a directory that holds no database instead of
    creating an empty one.
 3. Descriptions (``describe``) hold plain values only (ints, floats, strs, dicts), ready
    for a table and for JSON.

    >>> index_label({"type": "hnsw", "m": 16, "ef_construction": 200, "ef_search": 64})
    'hnsw(m=16, ef_c=200)'
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..collection import Collection
    from ..database import Database


def open_read(path: str) -> Database:
    """The database at path, read-only (DatabaseNotFoundError when there is none)."""
    from ..database import open as open_db
    return open_db(path, readonly=True)


def open_write(args: argparse.Namespace, path: str, create: bool = False,
               durability: str = "full") -> Database:
    """The database at path, writable, waiting --timeout seconds for another writer; a
    missing database is created only when create is True (invariant 2)."""
    from ..database import open as open_db
    from ..errors import DatabaseNotFoundError

    if not create and not os.path.exists(os.path.join(path, "data.mdb")):
        raise DatabaseNotFoundError(f"path: no vecdb database at {os.path.abspath(path)!r}")
    return open_db(path, timeout=args.timeout, durability=durability)


def progress(args: argparse.Namespace) -> bool:
    """The progress= argument of library calls: a bar unless --quiet or --json (the library
    shows it only when stderr is a terminal and tqdm is installed)."""
    return not args.quiet and not args.json


def disk_bytes(path: str) -> int:
    """Bytes the files under path occupy on disk (allocated blocks where the platform says,
    so sparse segment files count for what they hold)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:  # removed meanwhile (a vacuum of another process)
                continue
            blocks = getattr(st, "st_blocks", None)
            total += min(st.st_size, blocks * 512) if blocks is not None else st.st_size
    return total


def format_version(db: Database) -> int | None:
    """The format version stored in the database's LMDB meta table."""
    env = db._env
    with env.read() as txn:
        raw = txn.get(b"format_version", db=env.dbs["meta"])
    return None if raw is None else int(raw)


def index_label(index: dict[str, Any]) -> str:
    """A short label of an index config map (its ``to_dict()``)."""
    kind = index.get("type", "?")
    if kind == "hnsw":
        return f"hnsw(m={index['m']}, ef_c={index['ef_construction']})"
    if kind == "ivfpq":
        return f"ivfpq(nlist={index['nlist']}, m={index['m']})"
    return str(kind)


def quantization_label(quant: Any) -> str:
    """ "sq8", "pq:M" or "-"."""
    if quant is None:
        return "-"
    d = quant.to_dict()
    return "sq8" if d["type"] == "sq8" else f"{d['type']}:{d['m']}"


def text_index_label(text_index: Any) -> str:
    """ "bm25", "bm25(english)" or "no"."""
    if text_index is None:
        return "no"
    return f"bm25({text_index.stopwords})" if text_index.stopwords else "bm25"


def describe(col: Collection, with_disk: bool = True) -> dict[str, Any]:
    """name, count, rows, dim, metric, index, quantization, text index (and disk bytes) of a
    collection as plain values (invariant 3)."""
    stats = col.stats()
    out: dict[str, Any] = {
        "name": col.name, "count": stats["live"], "rows": stats["rows"],
        "tombstones": stats["tombstones"], "dim": col.dim, "metric": col.metric,
        "index": col.index.to_dict(),
        "quantization": None if col.quantization is None else col.quantization.to_dict(),
        "text_index": None if col.text_index is None else col.text_index.to_dict(),
        "generation": stats["generation"],
        "vector_bytes": stats["vector_bytes"],
        "code_bytes_per_vector": stats["code_bytes_per_vector"],
        "graph_bytes_per_vector": stats["graph_bytes_per_vector"],
    }
    if with_disk:  # the folder of the current row generation (rowset.py)
        from ..rowset import generation_dir
        out["disk_bytes"] = disk_bytes(generation_dir(col._base_dir, stats["generation"]))
    return out


def labels(col: Collection) -> dict[str, str]:
    """The short labels of a collection's index, quantization and text index."""
    return {"index": index_label(col.index.to_dict()),
            "quantization": quantization_label(col.quantization),
            "text_index": text_index_label(col.text_index)}
