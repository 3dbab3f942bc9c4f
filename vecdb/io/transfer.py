"""Import and export: the functions behind ``col.add_from``, ``col.export`` and
``db.import_`` (formats in formats.py and format_*.py, the export's snapshot in
collection_snapshot.py).

    >>> import tempfile, os, vecdb
    >>> folder = tempfile.mkdtemp()
    >>> db = vecdb.open(os.path.join(folder, "db"))
    >>> col = db.create_collection("docs", dim=2, metric="l2")
    >>> col.add(ids=["a", 7], vectors=[[1, 2], [3, 4]], documents=["first", None])
    >>> col.export(os.path.join(folder, "docs.jsonl"))
    2
    >>> copy = db.import_("copy", os.path.join(folder, "docs.jsonl"), metric="l2")
    >>> [(r.id, r.document) for r in copy.get()]
    [('a', 'first'), (7, None)]
    >>> db.close()

Behaviour on failure:
  - Arguments (format, mode, batch_size, ids, path, dim, metric) are checked before anything
    is read or written; a missing file is a NotFoundError naming the path.
  - Import streams: each batch of batch_size items is one ``add`` / ``upsert`` (all-or-nothing
    each). A bad item (malformed line, wrong dimension, bad metadata, an id that exists
    under mode="add") stops the import with an error naming the file and the line (JSONL,
    from 1) or row (Parquet, .npy, from 0) and the field. Checking the whole file first would
    need a second pass or unbounded memory, so into an existing collection the batches
    before the bad one stay written, and the message says how many items that is
    (``mode="upsert"`` can then run the whole file again). ``db.import_`` into a collection
    it creates is all-or-nothing: on any failure it drops the collection again.
  - Export writes ``<path>.partial`` and renames it to path at the end: on failure path
    keeps its old content (or stays absent).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from .. import validate
from ..config import index_from_dict, quantization_from_dict, text_index_from_dict
from ..errors import (
    CollectionExistsError,
    CorruptionError,
    DimensionMismatchError,
    InvalidArgumentError,
    ReadOnlyError,
    VecDBError,
)
from ..query import filters
from ..types import METRICS
from .collection_snapshot import CollectionSnapshot
from .formats import (
    Items,
    atomic_output,
    check_path,
    check_source,
    check_target,
    detect,
    open_reader,
    open_writer,
    pyarrow,
)
from .progress import check_progress, progress_bar

if TYPE_CHECKING:  # pragma: no cover
    from ..collection import Collection
    from ..database import Database

MODES = ("add", "upsert")
DEFAULT_METRIC = "cosine"
_ITEM_FIELD = re.compile(r"(ids|vectors|metadatas|documents)\[(\d+)\](.*)", re.DOTALL)
_SINGULAR = {"ids": "id", "vectors": "vector", "metadatas": "metadata",
             "documents": "document"}


# -- arguments -------------------------------------------------------------------------------

def _source(path: Any, format: str | None) -> tuple[str, str, str | None]:
    """(path, format, compression) of a file to import, checked."""
    source = check_path(path)
    fmt, compression = detect(source, format)
    check_source(source)
    if fmt == "parquet":
        pyarrow()
    return source, fmt, compression


def _import_options(mode: Any, batch_size: Any, progress: Any, ids: Any,
                    fmt: str) -> tuple[str, int, list | None]:
    mode = validate.choice(mode, "mode", MODES)
    batch_size = validate.positive_int(batch_size, "batch_size")
    check_progress(progress)
    if ids is not None and fmt != "npy":
        raise InvalidArgumentError(f"ids: only for .npy files (vectors only); {fmt} files "
                                   f"carry their own ids, got ids of type {type(ids).__name__}")
    return mode, batch_size, None if ids is None else validate.ids(ids)


def _writable(db: Database) -> None:
    db._check_open()
    if db.readonly:
        raise ReadOnlyError(f"database {db.path!r} was opened with readonly=True")


# -- errors ----------------------------------------------------------------------------------

def _amend(e: VecDBError, message: str) -> VecDBError:
    """An error of e's class with message, carrying e's traceback."""
    return type(e)(message).with_traceback(e.__traceback__)


def _located(e: VecDBError, source: str, items: Items, unit: str) -> VecDBError:
    """e (raised by add/upsert for one batch) with the file and the line / row of the item
    it names ("ids[3]: ..." -> "'f.jsonl', line 12, id: ...")."""
    message = str(e)
    m = _ITEM_FIELD.match(message)
    if m and int(m.group(2)) < len(items):
        where = f"{source!r}, {unit} {items.position(int(m.group(2)))}, " \
                f"{_SINGULAR[m.group(1)]}{m.group(3)}"
    else:
        where = f"{source!r}, {unit}s {items.position(0)} to " \
                f"{items.position(len(items) - 1)}: {message}"
    return _amend(e, where)


def _stream(col: Collection, reader: Any, source: str, unit: str, mode: str,
            batch_size: int, progress: Any, note: Callable[[int], str]) -> int:
    """Writes the reader's batches into col; returns how many items were written. An error
    gets note(items written before it) appended."""
    write = col.add if mode == "add" else col.upsert
    done = 0
    with progress_bar(progress, reader.total, f"import {col.name}", "rows") as bar:
        batches = reader.batches(batch_size, col.dim)
        try:
            for items in batches:
                try:
                    write(items.ids, items.vectors, items.metadatas, items.documents)
                except VecDBError as e:
                    raise _located(e, source, items, unit) from None
                done += len(items)
                bar.update(len(items))
        except VecDBError as e:
            raise _amend(e, f"{e} {note(done)}") from None
        finally:
            batches.close()
    return done


def _committed(done: int) -> str:
    if not done:
        return "(nothing was written)"
    return (f"({done} items before it were written, the rest was not; mode='upsert' can run "
            f"the file again)")


# -- add_from --------------------------------------------------------------------------------

def add_from(col: Collection, path: Any, *, format: str | None = None,
             mode: str = "add", ids: Sequence[Any] | None = None,
             batch_size: int = 10_000, progress: Any = False) -> int:
    """Streams the items of a JSONL, Parquet or .npy file into col (``add`` or ``upsert``
    per batch); returns how many were written. See the module docstring for errors.

    >>> col.add_from("docs.parquet", mode="upsert", batch_size=5000)  # doctest: +SKIP
    10000
    """
    source, fmt, compression = _source(path, format)
    mode, batch_size, id_list = _import_options(mode, batch_size, progress, ids, fmt)
    _writable(col._db)
    col._current()  # refuses a dropped collection
    with open_reader(fmt, source, compression, id_list) as reader:
        if reader.dim is not None and reader.dim != col.dim:
            raise DimensionMismatchError(
                f"path: {source!r} holds vectors of dimension {reader.dim}; collection "
                f"{col.name!r} has dimension {col.dim} (nothing was written)")
        return _stream(col, reader, source, "line" if fmt == "jsonl" else "row", mode,
                       batch_size, progress, _committed)


# -- import_ ---------------------------------------------------------------------------------

def _settings(config: dict | None, source: str, metric: str | None, index: Any,
              quantization: Any, text_index: Any) -> dict[str, Any]:
    """create_collection options: the arguments, else an export's stored settings, else the
    defaults. The stored quantization applies only with the stored index; text_index=True
    (the default) takes the stored text index."""
    config = config or {}
    try:
        if metric is None:
            metric = validate.choice(config.get("metric", DEFAULT_METRIC), "metric", METRICS)
        if index is None and config.get("index"):
            index = index_from_dict(config["index"])
            if quantization is None and config.get("quantization"):
                quantization = quantization_from_dict({"quantization": config["quantization"]})
        if text_index is True and "text_index" in config:
            text_index = text_index_from_dict({"text_index": config["text_index"]}) or False
    except (VecDBError, TypeError, ValueError) as e:
        raise CorruptionError(f"path: {source!r} holds collection settings this vecdb cannot "
                              f"use ({e}); give metric=, index= and quantization=") from None
    return {"metric": metric, "index": index, "quantization": quantization,
            "text_index": text_index}


def _check_existing(col: Collection, dim: int | None, metric: str | None,
                    source: str) -> None:
    if dim is not None and dim != col.dim:
        raise DimensionMismatchError(f"dim: collection {col.name!r} has dimension {col.dim}; "
                                     f"{source!r} holds vectors of dimension {dim}")
    if metric is not None and metric != col.metric:
        raise InvalidArgumentError(f"metric: collection {col.name!r} exists with metric "
                                   f"{col.metric!r}, got {metric!r}")


def import_into(db: Database, name: str, path: Any, *, format: str | None = None,
                dim: int | None = None, metric: str | None = None, index: Any = None,
                quantization: Any = None, text_index: Any = True, mode: str = "add",
                ids: Any = None, batch_size: int = 10_000,
                progress: Any = False) -> Collection:
    """Loads a file into collection name, creating it when missing (dim from the file or
    dim=; metric, index, quantization, text_index from the arguments, else from the settings
    a Parquet export stores, else the defaults: metric "cosine", HNSW, BM25); returns it.
    An existing collection must match dim (and metric, when given); index, quantization and
    text_index then do not apply. A collection created here is dropped again if the import
    fails (all-or-nothing).

    >>> col = db.import_("docs", "docs.parquet")  # doctest: +SKIP
    >>> names = [f"v{i}" for i in range(n)]  # doctest: +SKIP
    >>> col = db.import_("vecs", "vectors.npy", metric="l2", ids=names)  # doctest: +SKIP
    """
    _writable(db)
    name = validate.name(name)
    source, fmt, compression = _source(path, format)
    mode, batch_size, id_list = _import_options(mode, batch_size, progress, ids, fmt)
    dim = None if dim is None else validate.dim(dim)
    metric = None if metric is None else validate.choice(metric, "metric", METRICS)
    with open_reader(fmt, source, compression, id_list) as reader:
        if dim is not None and reader.dim is not None and dim != reader.dim:
            raise DimensionMismatchError(f"dim: {dim} was given, but {source!r} holds vectors "
                                         f"of dimension {reader.dim}")
        dim = dim if dim is not None else reader.dim
        col, created = _target(db, name, dim, metric, index, quantization, text_index,
                               reader.config, source)

        def note(done: int) -> str:
            if created:
                return f"(nothing was imported: collection {name!r} was not created)"
            return _committed(done)

        try:
            _stream(col, reader, source, "line" if fmt == "jsonl" else "row", mode,
                    batch_size, progress, note)
        except BaseException:
            if created:
                try:
                    db.drop_collection(name)
                except VecDBError:  # closed meanwhile: the error below matters more
                    pass
            raise
    return col


def _target(db: Database, name: str, dim: int | None, metric: str | None,
            index: Any, quantization: Any, text_index: Any, config: dict | None,
            source: str) -> tuple[Collection, bool]:
    """(the collection to import into, whether it was created here)."""
    if db._lookup(name) is None:
        if dim is None:
            raise InvalidArgumentError(f"dim: {source!r} holds no vector to take the dimension "
                                       f"from; give dim= to create collection {name!r}")
        settings = _settings(config, source, metric, index, quantization, text_index)
        try:
            return db.create_collection(name, dim=dim, **settings), True
        except CollectionExistsError:  # created meanwhile by another thread
            pass
    col = db.get_collection(name)
    _check_existing(col, dim, metric, source)
    return col, False


# -- export ----------------------------------------------------------------------------------

def _export_config(col: Collection, count: int) -> dict[str, Any]:
    """The collection's settings, kept by a Parquet export for db.import_."""
    quantization, text = col.quantization, col.text_index
    return {"collection": col.name, "dim": col.dim, "metric": col.metric,
            "index": col.index.to_dict(),
            "quantization": None if quantization is None else quantization.to_dict(),
            "text_index": False if text is None else text.to_dict(), "count": count}


def export(col: Collection, path: Any, *, format: str | None = None,
           where: Any = None, where_document: Any = None, batch_size: int = 10_000,
           progress: Any = False) -> int:
    """Writes col's live items (those matching the filters), in insertion order, as of one
    committed state, to a JSONL, Parquet or .npy file; returns how many. Writes made
    meanwhile by other threads or processes are not in it.

    >>> col.export("docs.parquet", where={"lang": "en"})  # doctest: +SKIP
    812
    """
    target = check_path(path)
    fmt, compression = detect(target, format)
    check_target(target)
    batch_size = validate.positive_int(batch_size, "batch_size")
    check_progress(progress)
    node = filters.parse(where, where_document)
    if fmt == "parquet":
        pyarrow()
    col._current()  # refuses a closed database or a dropped collection
    written = 0
    with CollectionSnapshot(col, node) as snap, \
            progress_bar(progress, snap.count, f"export {col.name}", "rows") as bar, \
            atomic_output(target) as partial:
        writer = open_writer(fmt, partial, compression, dim=col.dim, count=snap.count,
                             id_kind=snap.id_kind, config=_export_config(col, snap.count))
        try:
            for items in snap.batches(batch_size):
                writer.write(items)
                written += len(items)
                bar.update(len(items))
            writer.close()
        except BaseException:
            writer.abort()
            raise
    return written
