"""Byte encodings of LMDB keys and small values.

All collections share a fixed set of sub-databases; every key starts with the collection
number ``cid`` as 4 big-endian bytes, so one collection is one contiguous key range and
dropping it is a range delete. Integers inside keys are big-endian so that LMDB's byte order
is numeric order (rows are appended in increasing order, which lets writes use append mode).

External ids keep their Python type:
    int  -> b"i" + (id + 2**63) as 8 big-endian bytes   (so negative ids sort before positive)
    str  -> b"s" + UTF-8 bytes
"""

from __future__ import annotations

import struct

CID_BYTES = 4
MAX_KEY_BYTES = 511  # LMDB's default maximum key size
MAX_STR_ID_BYTES = MAX_KEY_BYTES - CID_BYTES - 1
INT_ID_MIN = -(2**63)
INT_ID_MAX = 2**63 - 1

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_STATE = struct.Struct("<QQQQ")  # watermark W, tombstone count T, row generation G, edits E
_STATE_V0 = struct.Struct("<QQQ")  # written before the edit log existed: E = 0


def cid_prefix(cid: int) -> bytes:
    return _U32.pack(cid)


def row_key(prefix: bytes, row: int) -> bytes:
    return prefix + _U64.pack(row)


def key_row(key: bytes) -> int:
    """Inverse of row_key: the row number at the end of a rows/tombstone key."""
    return _U64.unpack_from(key, CID_BYTES)[0]


def pack_u64(value: int) -> bytes:
    return _U64.pack(value)


def unpack_u64(value: bytes) -> int:
    return _U64.unpack(value)[0]


def id_key(prefix: bytes, ext_id: "int | str") -> bytes:
    """Key of an external id (already validated: int in int64 range or a short str)."""
    if isinstance(ext_id, int):
        return prefix + b"i" + _U64.pack(ext_id + 2**63)
    return prefix + b"s" + ext_id.encode("utf-8")


def pack_state(watermark: int, tomb_seq: int, generation: int, edit_seq: int = 0) -> bytes:
    return _STATE.pack(watermark, tomb_seq, generation, edit_seq)


def unpack_state(value: bytes) -> "tuple[int, int, int, int]":
    """(watermark W, tombstone count T, generation G, edit count E) of a collection.

    E counts the entries of the edit log: in-place changes of a row's metadata or document
    (update() without vectors), which the filter columns replay like new rows."""
    if len(value) == _STATE_V0.size:
        return (*_STATE_V0.unpack(value), 0)
    return _STATE.unpack(value)
