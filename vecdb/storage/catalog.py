"""The catalog: which collections exist, and the immutable config each was created with.

catalog sub-database:  name (UTF-8) -> msgpack map
    {"cid": int, "uuid": hex str, "dim": int, "metric": str, "index": map,
     "format_version": int, "created": float (unix time)}
meta sub-database:     b"next_cid" -> u64, the next collection number (never reused, so a
                       dropped collection's keys can never be mistaken for a new one's)
state sub-database:    cid (4 bytes) -> (watermark W, tombstone count T, generation G,
                       edit count E); see keys.unpack_state

Invariant: a collection exists iff its catalog entry and its state entry exist; both are
written and deleted in the same transaction.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import lmdb
import msgpack

from ..errors import FormatVersionError
from . import keys, postings

COLLECTION_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CollectionInfo:
    """What the catalog stores about one collection."""

    name: str
    cid: int
    uuid: str
    dim: int
    metric: str
    index: Dict[str, Any] = field(default_factory=dict)
    format_version: int = COLLECTION_FORMAT_VERSION
    created: float = 0.0

    @property
    def prefix(self) -> bytes:
        return keys.cid_prefix(self.cid)

    def to_bytes(self) -> bytes:
        return msgpack.packb(
            {"cid": self.cid, "uuid": self.uuid, "dim": self.dim, "metric": self.metric,
             "index": self.index, "format_version": self.format_version, "created": self.created},
            use_bin_type=True,
        )

    @classmethod
    def from_bytes(cls, name: str, raw: bytes) -> "CollectionInfo":
        d = msgpack.unpackb(raw, raw=False)
        if d.get("format_version", 0) > COLLECTION_FORMAT_VERSION:
            raise FormatVersionError(
                f"collection {name!r} has format version {d['format_version']}, newer than "
                f"this vecdb supports ({COLLECTION_FORMAT_VERSION})"
            )
        return cls(name=name, cid=d["cid"], uuid=d["uuid"], dim=d["dim"], metric=d["metric"],
                   index=d.get("index", {}), format_version=d["format_version"],
                   created=d.get("created", 0.0))


def get(txn: "lmdb.Transaction", dbs: dict, name: str) -> Optional[CollectionInfo]:
    raw = txn.get(name.encode("utf-8"), db=dbs["catalog"])
    return None if raw is None else CollectionInfo.from_bytes(name, raw)


def names(txn: "lmdb.Transaction", dbs: dict) -> List[str]:
    with txn.cursor(db=dbs["catalog"]) as cur:
        return [k.decode("utf-8") for k in cur.iternext(keys=True, values=False)]


def create(txn: "lmdb.Transaction", dbs: dict, name: str, dim: int, metric: str,
           index: Dict[str, Any]) -> CollectionInfo:
    raw = txn.get(b"next_cid", db=dbs["meta"])
    cid = keys.unpack_u64(raw) if raw else 1
    txn.put(b"next_cid", keys.pack_u64(cid + 1), db=dbs["meta"])
    info = CollectionInfo(name=name, cid=cid, uuid=uuidlib.uuid4().hex, dim=dim, metric=metric,
                          index=index, created=time.time())
    txn.put(name.encode("utf-8"), info.to_bytes(), db=dbs["catalog"])
    txn.put(info.prefix, keys.pack_state(0, 0, 0), db=dbs["state"])
    return info


def drop(txn: "lmdb.Transaction", dbs: dict, info: CollectionInfo) -> None:
    """Deletes the catalog entry, the state and every key of the collection."""
    txn.delete(info.name.encode("utf-8"), db=dbs["catalog"])
    txn.delete(info.prefix, db=dbs["state"])
    for table in ("rows", "ids", "tombs", "edits"):
        _delete_prefix(txn, dbs[table], info.prefix)
    postings.drop(txn, dbs["postings"], dbs["meta"], info.prefix)


def _delete_prefix(txn: "lmdb.Transaction", db: Any, prefix: bytes) -> None:
    with txn.cursor(db=db) as cur:
        if not cur.set_range(prefix):
            return
        while cur.key().startswith(prefix):
            if not cur.delete():
                break
