"""JSONL (JSON Lines) import and export: one item per line, UTF-8.

Line format (keys in any order):

    {"id": 7, "vector": [0.25, -1.5, ...], "metadata": {"year": 2024}, "document": "text"}

  - id: a JSON integer (signed 64-bit) or string; required.
  - vector: a list of dim numbers; required.
  - metadata: an object, null or absent. document: a string, null or absent.
  - any other top-level key is a metadata field (so a flat external file such as
    {"id": 1, "vector": [...], "year": 2024} imports with metadata {"year": 2024}); a key both
    at the top level and inside "metadata" is an error.
  - blank lines are skipped; a UTF-8 byte order mark before line 1 is ignored.

Export writes all four keys on every line, compact, with ensure_ascii=False; float32 vector
values as the shortest decimal of their float64 value (Python's repr), which parses back to
the very same float32, so export -> import is bit-exact. Metadata floats and ints (up to
signed 64-bit) keep their JSON type, so 1 and 1.0 stay apart.

Invariants:
 1. Lines are split at b"\\n" only (U+2028 and friends inside strings are text, not line
    ends), and counted from 1, blank lines included, for error messages.
 2. The reader holds one batch of parsed lines at a time (formats.py, invariant 1).
"""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import zstandard

from ..errors import (
    CorruptionError,
    DimensionMismatchError,
    InvalidArgumentError,
    InvalidMetadataError,
)
from ..validate import check_id
from .formats import Items, merge_fields

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

FIELDS = ("id", "vector", "metadata", "document")
_NUMBER_TYPES = {float, int}
_BOM = b"\xef\xbb\xbf"
CHUNK_BYTES = 1 << 20
_Record = tuple[int, Any, list, Optional[dict], Optional[str]]  # line, id, vector, meta, doc


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _chunks(raw: Any, compression: str | None) -> Iterator[bytes]:
    """The decompressed content of the open file raw, in chunks; a truncated compressed file
    raises EOFError (gzip) or CorruptionError (zstandard: a frame that never ends)."""
    if compression == "gz":
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            while True:
                chunk = unzipped.read(CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk
    elif compression == "zst":
        context = zstandard.ZstdDecompressor()
        frame, fed = context.decompressobj(), False
        while True:
            data = raw.read(CHUNK_BYTES)
            if not data:
                break
            while data:
                out = frame.decompress(data)
                fed = True
                if out:
                    yield out
                if not frame.eof:
                    break
                data = frame.unused_data  # the next frame starts here
                frame, fed = context.decompressobj(), False
        if fed and not frame.eof:
            raise CorruptionError("the last zstandard frame ends early (truncated file)")
    else:
        while True:
            chunk = raw.read(CHUNK_BYTES)
            if not chunk:
                return
            yield chunk


def _split_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The lines of a stream of chunks, split at b"\\n" only (invariant 1)."""
    parts: list[bytes] = []  # the pieces of a line spanning chunks
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            if parts:
                parts.append(chunk[start:end])
                yield b"".join(parts)
                parts = []
            else:
                yield chunk[start:end]
            start = end + 1
        if start < len(chunk):
            parts.append(chunk[start:])
    if parts:
        yield b"".join(parts)


class JsonlReader:
    """Reads a JSONL file (plain, .gz or .zst) in batches; see the module docstring.

    >>> with JsonlReader("items.jsonl", None) as reader:  # doctest: +SKIP
    ...     for items in reader.batches(1000, reader.dim):
    ...         print(len(items))
    """

    total: int | None = None  # not known without reading the whole file
    config: dict | None = None

    def __init__(self, path: str, compression: str | None) -> None:
        self.path = path
        self._line = 0
        self._raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        try:
            self._lines = _split_lines(_chunks(self._raw, compression))
            self._first = self._next_record(None)  # peeked for dim
        except BaseException:
            self._raw.close()
            raise
        self.dim: int | None = None if self._first is None else len(self._first[2])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._lines.close()
        self._raw.close()

    def _where(self, line: int) -> str:
        return f"{self.path!r}, line {line}"

    def _next_line(self) -> bytes | None:
        try:
            return next(self._lines)
        except StopIteration:
            return None
        except (OSError, EOFError, zstandard.ZstdError, CorruptionError) as e:
            raise CorruptionError(f"path: {self.path!r} cannot be read after line "
                                  f"{self._line} (a damaged or truncated file?): {e}") \
                from None

    def _next_record(self, dim: int | None) -> _Record | None:
        """The next non-blank line, parsed and checked (None at the end of the file)."""
        while True:
            raw = self._next_line()
            if raw is None:
                return None
            self._line += 1
            if self._line == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            if raw.strip():
                return self._parse(raw, self._line, dim)

    def _parse(self, raw: bytes, line: int, dim: int | None) -> _Record:
        where = self._where(line)
        try:
            obj = json.loads(raw)
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
            raise InvalidArgumentError(f"{where}: not valid JSON ({e})") from None
        if type(obj) is not dict:
            raise InvalidArgumentError(f"{where}: expected a JSON object with \"id\" and "
                                       f"\"vector\", got {type(obj).__name__} {_short(obj)}")
        if "id" not in obj:
            raise InvalidArgumentError(f"{where}: missing \"id\"")
        ext_id = check_id(obj["id"], f"{where}: id")
        vector = obj.get("vector")
        if type(vector) is not list:
            what = "missing \"vector\"" if "vector" not in obj else \
                f"\"vector\" must be a list of numbers, got {_short(vector)}"
            raise InvalidArgumentError(f"{where}: {what}")
        if not set(map(type, vector)) <= _NUMBER_TYPES:
            bad = next(v for v in vector if type(v) not in _NUMBER_TYPES)
            raise InvalidArgumentError(f"{where}: \"vector\" holds a non-number "
                                       f"{_short(bad)}")
        if dim is not None and len(vector) != dim:
            raise DimensionMismatchError(f"{where}: \"vector\" has {len(vector)} values, "
                                         f"expected dimension {dim}")
        if not vector:
            raise InvalidArgumentError(f"{where}: \"vector\" is empty")
        metadata = obj.get("metadata")
        if metadata is not None and type(metadata) is not dict:
            raise InvalidMetadataError(f"{where}: \"metadata\" must be an object or null, got "
                                       f"{_short(metadata)}")
        document = obj.get("document")
        if document is not None and type(document) is not str:
            raise InvalidArgumentError(f"{where}: \"document\" must be a string or null, got "
                                       f"{_short(document)}")
        if len(obj) > len(FIELDS) or any(k not in FIELDS for k in obj):
            extra = {k: v for k, v in obj.items() if k not in FIELDS}
            metadata = merge_fields(metadata, extra, where)
        return line, ext_id, vector, metadata, document

    def batches(self, batch_size: int, dim: int) -> Iterator[Items]:
        """Items of at most batch_size lines, checked against dim, in file order."""
        first, self._first = self._first, None
        if first is None:
            return
        if len(first[2]) != dim:
            raise DimensionMismatchError(f"{self._where(first[0])}: \"vector\" has "
                                         f"{len(first[2])} values, expected dimension {dim}")
        buf: list[_Record] = [first]
        while True:
            if len(buf) >= batch_size:  # yielded before the next line is read
                yield self._items(buf)
                buf = []
            record = self._next_record(dim)
            if record is None:
                break
            buf.append(record)
        if buf:
            yield self._items(buf)

    def _items(self, buf: list[_Record]) -> Items:
        try:
            with np.errstate(over="ignore"):  # beyond float32: inf, refused by add()
                vectors = np.array([r[2] for r in buf], dtype=np.float64).astype(np.float32)
        except OverflowError:  # an int beyond float64
            raise InvalidArgumentError(f"{self._where(buf[0][0])} to line {buf[-1][0]}: a "
                                       f"\"vector\" holds a number beyond float range") \
                from None
        return Items([r[1] for r in buf], vectors, [r[3] for r in buf], [r[4] for r in buf],
                     first=buf[0][0], positions=[r[0] for r in buf])


class JsonlWriter:
    """Writes items as JSONL lines into a file (plain, gzip or zstandard compressed)."""

    def __init__(self, partial: str, compression: str | None) -> None:
        self._raw = open(partial, "wb")  # noqa: SIM115 - closed by close()
        if compression == "gz":
            self._out: Any = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6,
                                           mtime=0)
        elif compression == "zst":
            compressor = zstandard.ZstdCompressor(level=3, write_checksum=True)
            self._out = compressor.stream_writer(self._raw, closefd=False)
        else:
            self._out = self._raw

    def write(self, items: Items) -> None:
        dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False,
                                 separators=(",", ":")).encode
        lines = [dumps({"id": ext_id, "vector": vector, "metadata": metadata or None,
                        "document": document})
                 for ext_id, vector, metadata, document in zip(
                     items.ids, items.vectors.tolist(), items.metadatas, items.documents)]
        if lines:
            self._out.write(("\n".join(lines) + "\n").encode("utf-8"))

    def close(self) -> None:
        if self._out is not self._raw:
            self._out.close()  # the gzip trailer / the zstandard frame end
        self._raw.close()

    def abort(self) -> None:
        with contextlib.suppress(OSError, ValueError, zstandard.ZstdError):
            self.close()  # the partial file is removed anyway
