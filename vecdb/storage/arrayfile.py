"""Checkpoint files of named numpy arrays: the quantizer codes (index/codes.py) and the
IVF-PQ lists (index/ivfpq.py) are saved and mapped back through here.

Layout (little-endian; every array starts on a 64-byte boundary):

    offset  size  field
         0     8  magic (the caller's, e.g. b"VDBCODE\\0")
         8     4  format version (the caller's)
        12     4  byte-order mark 0x01020304
        16     8  file size
        24     8  directory offset
        32     8  directory length
        40     4  CRC-32 of the directory
        44     4  CRC-32 of bytes 0..44
        48    16  zero
        64     -  arrays, then the directory

The directory (msgpack) holds the caller's metadata map and, per array, [offset, shape,
dtype, CRC-32].

Invariants:
 1. A file is written whole to a temp file, fsynced and renamed over the old one (then the
    folder is fsynced): a crash leaves the old file or the new one, never a torn one.
 2. ``load`` checks magic, version, byte order, header and directory checksums, every
    offset against the file size, and every array's checksum before returning anything:
    a file that fails raises CorruptionError (FormatVersionError for a newer version), and
    the caller rebuilds what the file held.
 3. Loaded arrays are views of a private copy-on-write mapping: writing to them never
    reaches the file.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from typing import Any, Dict, Mapping, Optional, Tuple

import msgpack
import numpy as np

from ..errors import CorruptionError, FormatVersionError

BOM = 0x01020304
_HEADER = struct.Struct("<8sIIQQQI")  # up to the directory CRC; the header CRC follows
HEADER_SIZE = 64
ALIGN = 64


def save(path: str, magic: bytes, version: int, meta: Mapping[str, Any],
         arrays: Mapping[str, np.ndarray], fsync: bool = True) -> None:
    """Writes meta and arrays to path atomically (invariant 1)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    specs: Dict[str, Any] = {}
    with open(tmp, "wb") as f:
        f.write(b"\0" * HEADER_SIZE)
        pos = HEADER_SIZE
        for name, a in arrays.items():
            pad = -pos % ALIGN
            f.write(b"\0" * pad)
            pos += pad
            a = np.ascontiguousarray(a)
            data = memoryview(a).cast("B") if a.size else b""
            f.write(data)
            specs[name] = [pos, list(a.shape), a.dtype.str, zlib.crc32(data)]
            pos += len(data)
        raw_dir = msgpack.packb({"meta": dict(meta), "arrays": specs}, use_bin_type=True)
        f.write(raw_dir)
        head = _HEADER.pack(magic, version, BOM, pos + len(raw_dir), pos, len(raw_dir),
                            zlib.crc32(raw_dir))
        f.seek(0)
        f.write(head + struct.pack("<I", zlib.crc32(head)))
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    replace(tmp, path, fsync)


def replace(tmp: str, path: str, fsync: bool = True) -> None:
    """Renames the written temp file over path, then (fsync) makes the rename durable."""
    os.rename(tmp, path)
    if fsync:
        dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def map_copy(path: str) -> Optional[mmap.mmap]:
    """A private copy-on-write mapping of the whole file at path (None when there is none);
    CorruptionError when it is shorter than a header."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            raise CorruptionError(f"{path!r} is too short ({size} bytes)")
        return mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)


def checked_directory(buf: mmap.mmap, path: str, header: struct.Struct, magic: bytes,
                      max_version: int, fields: Tuple[Any, ...]) -> bytes:
    """The directory bytes of a mapped checkpoint whose header (unpacked by ``header`` into
    ``fields``: magic, version, byte-order mark, ..., then file size, directory offset,
    length and CRC last; the header CRC follows the struct) passes every check of invariant
    2. Shared with the filter-columns file (colfile.py), whose header holds more fields."""
    found, version, bom = fields[:3]
    fsize, dir_off, dir_len, dir_crc = fields[-4:]
    if found != magic:
        raise CorruptionError(f"{path!r} has a bad magic {found!r} (expected {magic!r})")
    (head_crc,) = struct.unpack_from("<I", buf, header.size)
    if zlib.crc32(buf[:header.size]) != head_crc:
        raise CorruptionError(f"{path!r} fails its header checksum")
    if version > max_version:
        raise FormatVersionError(f"{path!r} has format version {version}, newer than this "
                                 f"vecdb supports ({max_version})")
    if bom != BOM:
        raise CorruptionError(f"{path!r} was written with another byte order")
    size = len(buf)
    if fsize != size or dir_off < HEADER_SIZE or dir_off + dir_len > size:
        raise CorruptionError(f"{path!r} has size {size}, its header says {fsize} "
                              f"(directory at {dir_off}+{dir_len})")
    raw_dir = buf[dir_off:dir_off + dir_len]
    if zlib.crc32(raw_dir) != dir_crc:
        raise CorruptionError(f"{path!r} fails its directory checksum")
    return raw_dir


def load(path: str, magic: bytes,
         max_version: int) -> Optional[Tuple[int, Dict[str, Any], Dict[str, np.ndarray]]]:
    """(version, meta, arrays) of the file at path, None when there is none. Raises
    CorruptionError / FormatVersionError when it fails a check (invariant 2)."""
    buf = map_copy(path)
    if buf is None:
        return None
    fields = _HEADER.unpack_from(buf, 0)
    raw_dir = checked_directory(buf, path, _HEADER, magic, max_version, fields)
    version, dir_off = fields[1], fields[4]
    try:
        d = msgpack.unpackb(raw_dir, raw=False)
        arrays = {name: _array(buf, dir_off, path, name, spec)
                  for name, spec in d["arrays"].items()}
        return version, d["meta"], arrays
    except (KeyError, TypeError, ValueError) as e:
        raise CorruptionError(f"{path!r} has a malformed directory ({e})") from None


def _array(buf: mmap.mmap, end: int, path: str, name: str, spec: Any) -> np.ndarray:
    offset, shape, dtype, crc = spec
    dt = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    nbytes = count * dt.itemsize
    if offset < HEADER_SIZE or count < 0 or offset + nbytes > end:
        raise CorruptionError(f"{path!r}: array {name!r} at {offset}+{nbytes} lies outside "
                              f"the file")
    view = memoryview(buf)[offset:offset + nbytes]
    if zlib.crc32(view) != crc:
        raise CorruptionError(f"{path!r}: array {name!r} fails its checksum")
    return np.frombuffer(view, dtype=dt, count=count).reshape(shape)
