"""The filter-columns checkpoint ``filters.cols``: a ColumnStore (columns.py) on disk.

Layout (little-endian; every array starts on a 64-byte boundary):

    offset  size  field
         0     8  magic b"VDBCOLS\\0"
         8     4  format version (1)
        12     4  byte-order mark 0x01020304
        16     8  watermark W: the store reflects rows [0, W)
        24     8  edit count E: ... and the first E entries of the edit log
        32     8  file size
        40     8  directory offset
        48     8  directory length
        56     4  CRC-32 of the directory
        60     4  CRC-32 of bytes 0..60
        64     -  arrays, then the directory

    +--------+---------------------------------------------+-----------+
    | header | kinds | vals | rows | elements | strings | text ... | directory |
    +--------+---------------------------------------------+-----------+

The directory (msgpack) describes each field (layout, counts, its arrays) and the text
column; an array is [offset, count, dtype, CRC-32], a blob [offset, length, CRC-32].

Invariants:
 1. The file is written whole to a temp file, fsynced and renamed over the old one: a crash
    leaves the old checkpoint or the new one.
 2. The loader checks magic, version, byte order, header and directory checksums and every
    offset against the file size before using anything; an array's own checksum is checked
    when its field is first used (a field never filtered on is never read).
 3. Loaded arrays are views of a private copy-on-write mapping: writing to them never
    reaches the file. A field whose arrays must grow is copied into memory.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from typing import Any, Callable, Dict, List

import msgpack
import numpy as np

from ..errors import CorruptionError
from . import arrayfile
from .arrayfile import ALIGN, BOM, HEADER_SIZE
from .columns import N_KINDS, ColumnStore, Dictionary, Field, TextColumn

FILE_NAME = "filters.cols"
MAGIC = b"VDBCOLS\0"
VERSION = 1
_HEADER = struct.Struct("<8sIIQQQQQI")  # up to the directory CRC; the header CRC follows


# -- writing --------------------------------------------------------------------------------

class _Writer:
    def __init__(self, f: Any) -> None:
        self.f = f
        self.pos = HEADER_SIZE
        f.write(b"\0" * HEADER_SIZE)

    def _pad(self) -> None:
        extra = -self.pos % ALIGN
        if extra:
            self.f.write(b"\0" * extra)
            self.pos += extra

    def array(self, a: np.ndarray) -> List[Any]:
        self._pad()
        data = memoryview(np.ascontiguousarray(a)).cast("B")
        offset = self.pos
        self.f.write(data)
        self.pos += len(data)
        return [offset, len(a), a.dtype.str, zlib.crc32(data)]

    def blob(self, data: Any) -> List[Any]:
        self._pad()
        offset = self.pos
        self.f.write(data)
        self.pos += len(data)
        return [offset, len(data), zlib.crc32(data)]


def save(store: ColumnStore, directory: str, fsync: bool = True) -> None:
    """Writes the store's checkpoint into directory atomically (invariant 1)."""
    path = os.path.join(directory, FILE_NAME)
    tmp = path + ".tmp"
    os.makedirs(directory, exist_ok=True)
    with open(tmp, "wb") as f:
        w = _Writer(f)
        fields = {}
        for name in store.field_names():
            field = store.field(name)
            n = field.n_entries if not field.dense else min(store.watermark, len(field.kinds))
            entry = {"dense": field.dense, "n": n, "counts": field.counts.tolist(),
                     "n_lists": field.n_lists, "n_elems": field.n_elems,
                     "kinds": w.array(field.kinds[:n]), "vals": w.array(field.vals[:n]),
                     "strings": w.blob(msgpack.packb(field.dictionary.strings,
                                                     use_bin_type=True))}
            if not field.dense:
                entry["rows"] = w.array(field.rows[:n])
            for key, column in zip(("elem_owner", "elem_kinds", "elem_vals"), field.elements()):
                entry[key] = w.array(column)
            fields[name] = entry
        text = store.text
        chunks = []
        for buffer, first, starts, ends in text.sealed_chunks():
            if starts is None or not len(starts):
                continue
            lo, hi = int(starts[0]), int(ends[-1]) + 1
            chunks.append({"data": w.blob(memoryview(buffer)[lo:hi]), "first": first,
                           "starts": w.array(starts - lo), "ends": w.array(ends - lo)})
        doc_piece = text.doc_piece[: store.watermark]
        directory_bytes = msgpack.packb(
            {"fields": fields, "text": {"doc_piece": w.array(doc_piece),
                                        "n_pieces": text.n_pieces, "chunks": chunks}},
            use_bin_type=True)
        w._pad()
        dir_offset = w.pos
        f.write(directory_bytes)
        size = dir_offset + len(directory_bytes)
        head = _HEADER.pack(MAGIC, VERSION, BOM, store.watermark, store.edit_seq, size,
                            dir_offset, len(directory_bytes), zlib.crc32(directory_bytes))
        f.seek(0)
        f.write(head + struct.pack("<I", zlib.crc32(head)))
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    arrayfile.replace(tmp, path, fsync)


# -- loading --------------------------------------------------------------------------------

def load(directory: str) -> ColumnStore:
    """The store of directory's checkpoint; an empty store when there is none.

    Raises CorruptionError / FormatVersionError when the file exists but fails its checks
    (the caller rebuilds from LMDB)."""
    path = os.path.join(directory, FILE_NAME)
    buf = arrayfile.map_copy(path)
    if buf is None:
        return ColumnStore()
    fields = _HEADER.unpack_from(buf, 0)
    raw_dir = arrayfile.checked_directory(buf, path, _HEADER, MAGIC, VERSION, fields)
    watermark, edit_seq, dir_off = fields[3], fields[4], fields[6]
    try:
        d = msgpack.unpackb(raw_dir, raw=False)
        reader = _Reader(buf, dir_off, path)
        store = ColumnStore()
        store.watermark, store.edit_seq = watermark, edit_seq
        for name, entry in d["fields"].items():
            store.defer_field(name, _field_loader(reader, name, entry))
        store.defer_text(_text_loader(reader, d["text"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptionError(f"{path!r} has a malformed directory ({e})") from None
    return store


class _Reader:
    """Checked views of arrays and blobs of a mapped checkpoint."""

    def __init__(self, buf: mmap.mmap, end: int, path: str) -> None:
        self.buf, self.end, self.path = buf, end, path

    def _span(self, offset: int, nbytes: int, crc: int) -> memoryview:
        if offset < HEADER_SIZE or nbytes < 0 or offset + nbytes > self.end:
            raise CorruptionError(f"{self.path!r}: a column at {offset}+{nbytes} lies outside "
                                  f"the file")
        view = memoryview(self.buf)[offset:offset + nbytes]
        if zlib.crc32(view) != crc:
            raise CorruptionError(f"{self.path!r}: a column at offset {offset} fails its "
                                  f"checksum")
        return view

    def array(self, spec: List[Any]) -> np.ndarray:
        offset, count, dtype, crc = spec
        dt = np.dtype(dtype)
        view = self._span(offset, count * dt.itemsize, crc)
        return np.frombuffer(view, dtype=dt, count=count)

    def blob(self, spec: List[Any]) -> memoryview:
        offset, length, crc = spec
        return self._span(offset, length, crc)


def _field_loader(r: _Reader, name: str, e: Dict[str, Any]) -> Callable[[], Field]:
    def load_field() -> Field:
        f = Field(name)
        f.dense = bool(e["dense"])
        f.kinds, f.vals = r.array(e["kinds"]), r.array(e["vals"])
        if not f.dense:
            f.rows, f.n_entries = r.array(e["rows"]), int(e["n"])
        f.counts = np.asarray(e["counts"], dtype=np.int64)
        f.dictionary = Dictionary(msgpack.unpackb(r.blob(e["strings"]), raw=False))
        f.elem_owner, f.elem_kinds, f.elem_vals = (r.array(e[k]) for k in
                                                   ("elem_owner", "elem_kinds", "elem_vals"))
        f.n_elems, f.n_lists = int(e["n_elems"]), int(e["n_lists"])
        _check_field(f, r.path)
        return f
    return load_field


def _check_field(f: Field, path: str) -> None:
    n = len(f.kinds)
    ok = len(f.vals) == n and (f.dense or len(f.rows) == n == f.n_entries) and \
        len(f.elem_owner) == len(f.elem_kinds) == len(f.elem_vals) == f.n_elems and \
        len(f.counts) == N_KINDS and (not n or int(f.kinds.max()) < N_KINDS)
    if ok and f.n_elems:
        ok = 0 <= int(f.elem_owner.min()) and int(f.elem_owner.max()) < f.n_lists
    if not ok:
        raise CorruptionError(f"{path!r}: the column of field {f.name!r} is inconsistent")


def _text_loader(r: _Reader, e: Dict[str, Any]) -> Callable[[], TextColumn]:
    def load_text() -> TextColumn:
        t = TextColumn()
        t.doc_piece = r.array(e["doc_piece"])
        for chunk in e["chunks"]:
            offset = chunk["data"][0]
            r.blob(chunk["data"])  # checks its bounds and checksum
            starts, ends = r.array(chunk["starts"]) + offset, r.array(chunk["ends"]) + offset
            t.add_loaded_chunk(r.buf, int(chunk["first"]), starts, ends)
        t.n_pieces = int(e["n_pieces"])
        if len(t.doc_piece) and int(t.doc_piece.max()) > t.n_pieces:
            raise CorruptionError(f"{r.path!r}: the document column is inconsistent")
        return t
    return load_text
