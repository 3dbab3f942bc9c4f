"""Row records: the external id, metadata and document of one row, as stored in LMDB.

Layout of a stored record value:

    byte 0        flags: bit 0 set = the body is zstandard-compressed
    byte 1        id kind: b"i" (int) or b"s" (str)
    bytes 2..9    int id: (id + 2**63) as 8 big-endian bytes       (kind "i")
    bytes 2..3    str id: its UTF-8 length n (u16 big-endian), then n bytes (kind "s")
    then          body: msgpack array [metadata (map or nil), document (str or nil)]

The id comes first and uncompressed so a query that returns only ids (the common hot path)
reads it without unpacking or decompressing the body. Bodies whose msgpack form exceeds
COMPRESS_ABOVE bytes are compressed when that saves space. msgpack packers and zstandard
(de)compressors are not thread-safe: each thread keeps its own.
"""

from __future__ import annotations

import struct
import threading
from typing import Any, Optional

import msgpack
import zstandard

from ..errors import CorruptionError

COMPRESS_ABOVE = 1024
_FLAG_ZSTD = 1
_INT = struct.Struct(">BcQ")   # flags, b"i", id + 2**63
_STR = struct.Struct(">BcH")   # flags, b"s", UTF-8 length
_EMPTY_BODY = msgpack.packb([None, None])
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
    if metadata or document is not None:
        body = _packer().pack([metadata or None, document])
    else:
        body = _EMPTY_BODY
    flags = 0
    if len(body) > COMPRESS_ABOVE:
        packed = _compressor().compress(body)
        if len(packed) < len(body):
            body, flags = packed, _FLAG_ZSTD
    if isinstance(ext_id, int):
        return _INT.pack(flags, b"i", ext_id + 2**63) + body
    raw = ext_id.encode("utf-8")
    return _STR.pack(flags, b"s", len(raw)) + raw + body


def _id_end(value: bytes) -> "tuple[Any, int]":
    """(id, offset of the body)."""
    kind = value[1:2]
    if kind == b"i":
        return _INT.unpack_from(value)[2] - 2**63, _INT.size
    if kind == b"s":
        n = _STR.unpack_from(value)[2]
        return value[_STR.size:_STR.size + n].decode("utf-8"), _STR.size + n
    raise CorruptionError(f"row record has unknown id kind {kind!r}")


def decode_id(value: bytes) -> Any:
    """The external id of a record, without touching its body."""
    return _id_end(value)[0]


def decode(value: bytes) -> "tuple[Any, Optional[dict], Optional[str]]":
    """Returns (id, metadata or None, document or None)."""
    ext_id, start = _id_end(value)
    body = value[start:]
    if value[0] & _FLAG_ZSTD:
        body = _decompressor().decompress(body)
    elif value[0]:
        raise CorruptionError(f"row record has unknown flags {value[0]:#x}")
    metadata, document = msgpack.unpackb(body, raw=False, strict_map_key=False)
    return ext_id, metadata, document
