"""Row records: the external id, metadata and document of one row, as stored in LMDB.

Layout of a stored record value:
    byte 0      0 = msgpack follows as is; 1 = zstandard-compressed msgpack follows
    bytes 1..   msgpack array [id, metadata (map or nil), document (str or nil)]
Records whose msgpack form exceeds COMPRESS_ABOVE bytes are compressed when that saves space.
msgpack packers and zstandard (de)compressors are not thread-safe: each thread keeps its own.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import msgpack
import zstandard

from ..errors import CorruptionError

COMPRESS_ABOVE = 1024
_RAW = b"\x00"
_ZSTD = b"\x01"
_local = threading.local()


def _packer() -> "msgpack.Packer":
    p = getattr(_local, "packer", None)
    if p is None:
        p = _local.packer = msgpack.Packer(use_bin_type=True)
    return p


def _compressor() -> "zstandard.ZstdCompressor":
    c = getattr(_local, "compressor", None)
    if c is None:
        c = _local.compressor = zstandard.ZstdCompressor(level=3)
    return c


def _decompressor() -> "zstandard.ZstdDecompressor":
    d = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d


def encode(ext_id: "int | str", metadata: Optional[dict], document: Optional[str]) -> bytes:
    body = _packer().pack([ext_id, metadata or None, document])
    if len(body) > COMPRESS_ABOVE:
        packed = _compressor().compress(body)
        if len(packed) < len(body):
            return _ZSTD + packed
    return _RAW + body


def decode(value: bytes) -> "tuple[Any, Optional[dict], Optional[str]]":
    """Returns (id, metadata or None, document or None)."""
    tag, body = value[:1], value[1:]
    if tag == _ZSTD:
        body = _decompressor().decompress(body)
    elif tag != _RAW:
        raise CorruptionError(f"row record has unknown encoding tag {tag!r}")
    ext_id, metadata, document = msgpack.unpackb(body, raw=False, strict_map_key=False)
    return ext_id, metadata, document
