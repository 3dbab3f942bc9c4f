"""BM25 postings of a collection's documents in LMDB: term -> (row, term frequency, document
length), written in the same transaction as the batch they index (issue 6).

Layout:
    postings sub-database (dupsort + dupfixed): key = cid (4 bytes) + term (UTF-8, at most
        MAX_TERM_BYTES), values = 16 bytes: row u64, tf u32, document length u32, all
        big-endian, so a term's postings are sorted by row and one MDB_GET_MULTIPLE read
        (``read``) returns them as a numpy array without a Python loop per posting.
    meta sub-database: b"text" + cid -> (documents with at least one term u64, total
        terms u64), little-endian: the corpus statistics of BM25 (N, average length).

The document length rides in every posting so that scoring needs no second lookup per row.

Callers tokenize (query/tokenize.py) and hand in term counts: storage stays below query.

Invariants:
 1. A row has postings iff it holds a live document with at least one term: the writer
    removes a row's postings (from its old document's term counts) in the transaction that
    deletes or replaces the row, and adds the new row's in the one that commits it.
 2. The statistics equal the sum over the live rows' postings (documents, terms).
 3. A term longer than MAX_TERM_BYTES is cut at a UTF-8 boundary: long tokens that share
    their first MAX_TERM_BYTES bytes share a posting list.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

POSTING = struct.Struct(">QII")  # row, term frequency, document length
POSTING_DTYPE = np.dtype([("row", ">u8"), ("tf", ">u4"), ("dl", ">u4")])
MAX_TERM_BYTES = 256  # the tokenizer's 64 characters of at most 4 UTF-8 bytes each
_STATS = struct.Struct("<QQ")
_STATS_KEY = b"text"


def term_key(prefix: bytes, term: str) -> bytes:
    """The postings key of a term (cut to MAX_TERM_BYTES at a character boundary)."""
    raw = term.encode("utf-8")
    if len(raw) > MAX_TERM_BYTES:
        raw = raw[:MAX_TERM_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return prefix + raw


@dataclass
class TextStats:
    """Corpus statistics of one collection's text index (invariant 2)."""

    docs: int = 0
    terms: int = 0

    @property
    def average_length(self) -> float:
        return self.terms / self.docs if self.docs else 0.0

    @classmethod
    def load(cls, txn: Any, meta_db: Any, prefix: bytes) -> "TextStats":
        raw = txn.get(_STATS_KEY + prefix, db=meta_db)
        return cls(*_STATS.unpack(raw)) if raw is not None else cls()

    def save(self, txn: Any, meta_db: Any, prefix: bytes) -> None:
        txn.put(_STATS_KEY + prefix, _STATS.pack(self.docs, self.terms), db=meta_db)


def entries(prefix: bytes, row: int, counts: Mapping[str, int],
            stats: TextStats) -> List[Tuple[bytes, bytes]]:
    """The postings (key, value) that index the document of row (its term counts), counted
    in stats; store them with ``put``."""
    length = sum(counts.values())
    if not length:
        return []
    stats.docs += 1
    stats.terms += length
    pack = POSTING.pack
    if all(len(term) <= MAX_TERM_BYTES // 4 for term in counts):  # no cut: keys distinct
        return [(prefix + term.encode("utf-8"), pack(row, tf, length))
                for term, tf in counts.items()]
    return [(key, pack(row, tf, length)) for key, tf in _merged(prefix, counts).items()]


def put_documents(txn: Any, db: Any, prefix: bytes,
                  documents: Sequence[Tuple[int, Mapping[str, int]]], stats: TextStats) -> None:
    """Indexes many documents at once (rows with their term counts) and counts them in stats:
    what ``entries`` then ``put`` do for one, with the values packed, and the postings put
    in key order, by numpy instead of a Python step per posting."""
    term_ids: Dict[str, int] = {}
    key_ids: Dict[bytes, int] = {}
    ids: List[int] = []
    tfs: List[int] = []
    rows: List[int] = []
    lengths: List[int] = []
    for row, counts in documents:
        length = sum(counts.values())
        if not length:
            continue
        stats.docs += 1
        stats.terms += length
        start = len(ids)
        for term, tf in counts.items():
            tid = term_ids.get(term)
            if tid is None:
                tid = term_ids[term] = key_ids.setdefault(term_key(prefix, term), len(key_ids))
            ids.append(tid)
            tfs.append(tf)
        if len(term_ids) > len(key_ids) and len(set(ids[start:])) < len(ids) - start:
            _merge_cut_terms(ids, tfs, start)  # invariant 3: terms cut to one key add up
        rows += [row] * (len(ids) - start)
        lengths += [length] * (len(ids) - start)
    if not ids:
        return
    keys = list(key_ids)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[sorted(range(len(keys)), key=keys.__getitem__)] = np.arange(len(keys))
    tid = np.array(ids, dtype=np.int64)
    values = np.empty(len(ids), dtype=POSTING_DTYPE)
    values["row"], values["tf"], values["dl"] = rows, tfs, lengths
    order = np.lexsort((values["row"], rank[tid]))
    items = zip([keys[i] for i in tid[order].tolist()],
                values[order].view(f"V{POSTING.size}").tolist())
    with txn.cursor(db=db) as cur:
        cur.putmulti(items, dupdata=True)


def _merge_cut_terms(ids: List[int], tfs: List[int], start: int) -> None:
    """Adds up, in place, the counts of one document's terms (from start) that share a key."""
    merged: Dict[int, int] = {}
    for tid, tf in zip(ids[start:], tfs[start:]):
        merged[tid] = merged.get(tid, 0) + tf
    del ids[start:], tfs[start:]
    ids += merged.keys()
    tfs += merged.values()


def put(txn: Any, db: Any, items: List[Tuple[bytes, bytes]]) -> None:
    """Stores postings from ``entries`` (sorted first: one pass of LMDB's cursor)."""
    if items:
        items.sort()
        with txn.cursor(db=db) as cur:
            cur.putmulti(items, dupdata=True)


def add(txn: Any, db: Any, prefix: bytes, row: int, counts: Mapping[str, int],
        stats: TextStats) -> None:
    """Indexes the document of row (its term counts) and counts it in stats."""
    put(txn, db, entries(prefix, row, counts, stats))


def remove(txn: Any, db: Any, prefix: bytes, row: int, counts: Mapping[str, int],
           stats: TextStats) -> None:
    """Removes the postings add() wrote for row with the same counts, and uncounts it."""
    length = sum(counts.values())
    if not length:
        return
    for key, tf in _merged(prefix, counts).items():
        txn.delete(key, POSTING.pack(row, tf, length), db=db)
    stats.docs -= 1
    stats.terms -= length


def _merged(prefix: bytes, counts: Mapping[str, int]) -> Dict[bytes, int]:
    """Term counts by key: terms that invariant 3 cuts to the same key add up."""
    merged: Dict[bytes, int] = {}
    for term, tf in counts.items():
        key = term_key(prefix, term)
        merged[key] = merged.get(key, 0) + tf
    return merged


def read(txn: Any, db: Any, prefix: bytes, term: str) -> np.ndarray:
    """The postings of term (POSTING_DTYPE, ascending rows; empty when it has none)."""
    key = term_key(prefix, term)
    with txn.cursor(db=db) as cur:
        if not cur.set_key(key):
            return np.empty(0, dtype=POSTING_DTYPE)
        packed = cur.getmulti([key], dupdata=True, dupfixed_bytes=POSTING.size,
                              keyfixed=True)
    records = np.frombuffer(packed, dtype=np.dtype([("key", f"S{len(key)}"),
                                                    *POSTING_DTYPE.descr]))
    return records[["row", "tf", "dl"]].astype(POSTING_DTYPE)


def drop(txn: Any, db: Any, meta_db: Any, prefix: bytes) -> None:
    """Deletes every posting and the statistics of the collection with this prefix."""
    with txn.cursor(db=db) as cur:
        if cur.set_range(prefix):
            while cur.key().startswith(prefix):
                if not cur.delete(dupdata=True):
                    break
    txn.delete(_STATS_KEY + prefix, db=meta_db)
