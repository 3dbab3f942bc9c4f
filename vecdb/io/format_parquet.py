"""Parquet import and export (pyarrow, an optional extra, imported only when used).

Columns written by export:

    id        int64 when every id of the collection is an int, string when every one is a
              str; a collection holding both writes each id as JSON text (7 -> "7",
              "a" -> "\\"a\\"") and says so in the schema metadata (id_encoding "json")
    vector    fixed_size_list<float32>[dim], as stored
    metadata  string: the metadata as a JSON object (null when empty), exact for mixed
              types and lists
    document  string (null when absent)

The schema metadata key b"vecdb" holds a JSON object: {"format": "vecdb-export",
"version": 1, "collection", "dim", "metric", "index", "quantization", "text_index",
"count", "id_encoding"}; ``db.import_`` creates an equivalent collection from it. Pages carry
CRC checksums (write_page_checksum), verified on import.

Import also takes files written by other tools: id as any integer or string type; vector as
fixed_size_list / list / large_list of floats or integers; metadata as a JSON string column
or a struct column (null struct fields are absent keys); document as a string column.
Every other column is a metadata field (a null value: the field is absent), so a flat
table (id, vector, year, tags) imports with metadata {"year": ..., "tags": [...]}; the
index columns pandas adds (``__index_level_0__``, listed in its b"pandas" metadata) are
left out.

Invariants:
 1. The reader reads with ParquetFile.iter_batches(batch_size): one batch in memory at a
    time; rows are counted from 0 across the file for error messages.
 2. The writer writes one row group per batch through one ParquetWriter; the schema (and so
    the id column's type) is fixed before the first batch from the collection's id kinds.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (
    CorruptionError,
    DimensionMismatchError,
    FormatVersionError,
    InvalidArgumentError,
    InvalidIdError,
    InvalidMetadataError,
)
from .formats import Items, merge_fields, pyarrow

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

CONFIG_KEY = b"vecdb"
CONFIG_FORMAT = "vecdb-export"
CONFIG_VERSION = 1
FIELDS = ("id", "vector", "metadata", "document")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class ParquetWriter:
    """Writes items into a Parquet file (see the module docstring)."""

    def __init__(self, partial: str, dim: int, id_kind: str | None, config: dict) -> None:
        pa = self._pa = pyarrow()
        self._encoding = {"str": "str", "mixed": "json"}.get(id_kind or "", "int")
        self._dim = dim
        meta = {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, **config,
                "id_encoding": self._encoding}
        self._schema = pa.schema(
            [pa.field("id", pa.int64() if self._encoding == "int" else pa.string(),
                      nullable=False),
             pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
             pa.field("metadata", pa.string()), pa.field("document", pa.string())],
            metadata={CONFIG_KEY: _json(meta).encode("utf-8")})
        self._writer = pa.parquet.ParquetWriter(partial, self._schema, compression="zstd",
                                                write_page_checksum=True)

    def write(self, items: Items) -> None:
        pa = self._pa
        ids = [_json(i) for i in items.ids] if self._encoding == "json" else items.ids
        vectors = pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(items.vectors, dtype=np.float32).reshape(-1)),
            self._dim)
        metadatas = [_json(m) if m else None for m in items.metadatas]
        batch = pa.RecordBatch.from_arrays(
            [pa.array(ids, type=self._schema.field("id").type), vectors,
             pa.array(metadatas, type=pa.string()), pa.array(items.documents, type=pa.string())],
            schema=self._schema)
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        with contextlib.suppress(OSError, self._pa.ArrowException):
            self._writer.close()  # the partial file is removed anyway


class ParquetReader:
    """Reads a Parquet file in batches (see the module docstring).

    >>> with ParquetReader("items.parquet") as reader:  # doctest: +SKIP
    ...     reader.dim, reader.total, reader.config["metric"]
    (384, 10000, 'cosine')
    """

    def __init__(self, path: str) -> None:
        pa = self._pa = pyarrow()
        self.path = path
        try:
            self._file = pa.parquet.ParquetFile(path, page_checksum_verification=True)
            schema = self._file.schema_arrow
        except (pa.ArrowException, OSError) as e:
            raise CorruptionError(f"path: {path!r} is not a readable Parquet file: {e}") \
                from None
        try:
            self.total: int | None = self._file.metadata.num_rows
            self.config = self._read_config(schema)
            self._check_schema(schema)
            self.dim: int | None = self._vector_dim(schema)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def _where(self, row: int) -> str:
        return f"{self.path!r}, row {row}"

    def _read_config(self, schema: Any) -> dict | None:
        raw = (schema.metadata or {}).get(CONFIG_KEY)
        if raw is None:
            return None
        try:
            config = json.loads(raw)
        except ValueError as e:
            raise CorruptionError(f"path: {self.path!r} has unreadable vecdb settings in its "
                                  f"schema metadata ({e})") from None
        if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
            raise CorruptionError(f"path: {self.path!r} has vecdb settings of an unknown kind "
                                  f"in its schema metadata: {raw[:80]!r}")
        version = config.get("version")
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise FormatVersionError(f"path: {self.path!r} was exported by a newer vecdb "
                                     f"(settings version {version!r}, this vecdb reads up to "
                                     f"{CONFIG_VERSION}); upgrade vecdb")
        return config

    def _check_schema(self, schema: Any) -> None:
        types = self._pa.types
        names = schema.names
        for required in ("id", "vector"):
            if required not in names:
                raise InvalidArgumentError(f"path: {self.path!r} has no {required!r} column "
                                           f"(columns: {names})")
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"path: {self.path!r} has duplicate column names "
                                       f"{names}")
        kind = schema.field("id").type
        if not (types.is_integer(kind) or types.is_string(kind) or types.is_large_string(kind)):
            raise InvalidArgumentError(f"path: {self.path!r}: column 'id' must hold integers "
                                       f"or strings, has type {kind}")
        kind = schema.field("vector").type
        if not (types.is_fixed_size_list(kind) or types.is_list(kind) or
                types.is_large_list(kind)) or not (types.is_floating(kind.value_type) or
                                                   types.is_integer(kind.value_type)):
            raise InvalidArgumentError(f"path: {self.path!r}: column 'vector' must be a list "
                                       f"of numbers, has type {kind}")
        for name, ok in (("metadata", ("string", "struct", "null")),
                         ("document", ("string", "null"))):
            if name not in names:
                continue
            kind = schema.field(name).type
            if not any(self._is(kind, k) for k in ok):
                raise InvalidArgumentError(f"path: {self.path!r}: column {name!r} must be "
                                           f"{' or '.join(ok)}, has type {kind}")
        hidden = self._pandas_index_columns(schema)
        self._extra = [n for n in names if n not in FIELDS and n not in hidden]
        self._names = names

    @staticmethod
    def _pandas_index_columns(schema: Any) -> set[str]:
        """Columns that hold a pandas DataFrame's index (``df.to_parquet()`` writes them,
        and says so in its b"pandas" schema metadata): not metadata fields."""
        try:
            pandas = json.loads((schema.metadata or {}).get(b"pandas", b"{}"))
            return {c for c in pandas.get("index_columns", []) if isinstance(c, str)}
        except (ValueError, AttributeError):
            return set()

    def _is(self, kind: Any, what: str) -> bool:
        types = self._pa.types
        if what == "string":
            return types.is_string(kind) or types.is_large_string(kind)
        return types.is_struct(kind) if what == "struct" else types.is_null(kind)

    def _vector_dim(self, schema: Any) -> int | None:
        kind = schema.field("vector").type
        if self._pa.types.is_fixed_size_list(kind):
            return kind.list_size
        for batch in self._file.iter_batches(batch_size=1, columns=["vector"]):
            if batch.num_rows:
                first = batch.column(0)[0]
                return None if not first.is_valid else len(first)
        return None

    def batches(self, batch_size: int, dim: int) -> Iterator[Items]:
        """Items of at most batch_size rows, checked against dim, in file order."""
        row = 0
        reading = self._file.iter_batches(batch_size=batch_size)
        while True:
            try:
                batch = next(reading, None)
            except (self._pa.ArrowException, OSError) as e:
                raise CorruptionError(f"path: {self.path!r} cannot be read after row {row} "
                                      f"(a damaged file?): {e}") from None
            if batch is None:
                return
            if batch.num_rows:
                yield self._items(batch, row, dim)
            row += batch.num_rows

    def _items(self, batch: Any, first: int, dim: int) -> Items:
        n = batch.num_rows
        column = batch.column
        ids = self._ids(column("id"), first)
        vectors = self._vectors(column("vector"), first, n, dim)
        metadatas: list[dict | None] = [None] * n
        if "metadata" in self._names:
            metadatas = self._metadatas(column("metadata"), first)
        documents = column("document").to_pylist() if "document" in self._names else [None] * n
        for name in self._extra:
            for i, value in enumerate(column(name).to_pylist()):
                if value is not None:
                    metadatas[i] = merge_fields(metadatas[i], {name: value},
                                                self._where(first + i))
        return Items(ids, vectors, metadatas, documents, first=first)

    def _first_null(self, array: Any, first: int, what: str) -> None:
        if array.null_count:
            i = next(i for i, valid in enumerate(array.is_valid().to_pylist()) if not valid)
            raise InvalidArgumentError(f"{self._where(first + i)}: {what} is null")

    def _ids(self, array: Any, first: int) -> list:
        self._first_null(array, first, "id")
        ids = array.to_pylist()
        if (self.config or {}).get("id_encoding") == "json":
            for i, text in enumerate(ids):
                try:
                    ids[i] = json.loads(text)
                except ValueError:
                    raise InvalidIdError(f"{self._where(first + i)}: id {text!r} is not the "
                                         f"JSON text of an id (id_encoding 'json')") from None
        return ids

    def _vectors(self, array: Any, first: int, n: int, dim: int) -> np.ndarray:
        self._first_null(array, first, "vector")
        if self._pa.types.is_fixed_size_list(array.type):
            if array.type.list_size != dim:
                raise DimensionMismatchError(
                    f"path: {self.path!r}: column 'vector' has {array.type.list_size} values "
                    f"per row, expected dimension {dim}")
        else:
            lengths = self._pa.compute.list_value_length(array).to_numpy(zero_copy_only=False)
            wrong = np.flatnonzero(lengths != dim)
            if len(wrong):
                i = int(wrong[0])
                raise DimensionMismatchError(f"{self._where(first + i)}: vector has "
                                             f"{int(lengths[i])} values, expected dimension "
                                             f"{dim}")
        values = array.flatten().to_numpy(zero_copy_only=False)  # a null value: NaN
        with np.errstate(over="ignore"):  # beyond float32: inf, refused by add()
            return values.astype(np.float32, copy=False).reshape(n, dim)

    def _metadatas(self, array: Any, first: int) -> list[dict | None]:
        values = array.to_pylist()
        if self._pa.types.is_struct(array.type):
            return [None if v is None else {k: x for k, x in v.items() if x is not None}
                    for v in values]
        for i, text in enumerate(values):
            if text is None:
                continue
            try:
                value = json.loads(text)
            except ValueError as e:
                raise InvalidMetadataError(f"{self._where(first + i)}: metadata is not valid "
                                           f"JSON ({e})") from None
            if not isinstance(value, dict):
                raise InvalidMetadataError(f"{self._where(first + i)}: metadata must be a JSON "
                                           f"object, got {text[:60]!r}")
            values[i] = value
        return values
