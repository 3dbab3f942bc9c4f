"""The text-index part of the integrity check: BM25 postings and corpus statistics of a
collection recomputed from the documents of its live rows and compared with LMDB
(storage/postings.py invariants 1-2, textindex.py invariant 2).

Memory stays bounded on millions of rows: instead of holding both posting sets, every
posting (term key, row, tf, document length) is hashed, and per row the count and the sum
of hashes (mod 2**64) are kept, once from the documents and once from LMDB. Rows whose count
or sum differ are the damaged ones; for the first few of them a second pass lists exactly
which postings are missing or unexpected.

Invariants:
 1. The recomputation derives postings with the very functions the writer uses
    (``textindex.counts_for``, ``postings.entries``), so a healthy index matches bit for bit.
 2. It only reads, inside the caller's read transaction.

    >>> text = TextCheck(txn, env.dbs, info, scan.watermark, findings)  # doctest: +SKIP
    >>> text.add(0, None, "a document"); text.compare(scan)  # doctest: +SKIP
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ..config import text_index_from_dict
from ..storage import keys, postings
from ..storage.catalog import CollectionInfo
from ..textindex import counts_for
from .check_lmdb import CollectionScan, decode_record
from .check_report import MAX_PER_GROUP, Findings

FLUSH_POSTINGS = 1 << 16
SHORT_TERM = postings.MAX_TERM_BYTES // 4  # longer terms may be cut (postings.entries)
_K1 = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, elementwise on uint64 (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def posting_hashes(key_hashes: np.ndarray, rows: np.ndarray, tf: np.ndarray,
                   dl: np.ndarray) -> np.ndarray:
    """One uint64 per posting, from its key's hash and its (row, tf, length)."""
    value = rows.astype(np.uint64) * _K1 + ((tf.astype(np.uint64) << np.uint64(32)) |
                                             dl.astype(np.uint64))
    return _mix(key_hashes ^ _mix(value))


def _hashes(terms: list[str]) -> np.ndarray:
    return np.fromiter(map(hash, terms), dtype=np.int64, count=len(terms)).view(np.uint64)


def _term_hash(key: bytes, prefix: bytes) -> int:
    """The hash of the term a postings key stores (the key's bytes when they are no UTF-8:
    such a key matches no document)."""
    try:
        return hash(key[len(prefix):].decode("utf-8"))
    except UnicodeDecodeError:
        return hash(key)


def recompute_postings(prefix: bytes, row: int, document: str | None, config: Any,
                       stats: postings.TextStats) -> list[tuple[bytes, bytes]]:
    """The postings (key, value) the writer stores for a row holding document, counted in
    stats (what a rebuild writes; textindex.TextWriter.add without the transaction)."""
    if config is None or not document:
        return []
    return postings.entries(prefix, row, counts_for(config, document), stats)


class TextCheck:
    """Postings and statistics of one collection against its documents (module docstring).
    Feed it the live rows with ``add`` during the row scan, then call ``compare``."""

    def __init__(self, txn: Any, dbs: dict[str, Any], info: CollectionInfo, watermark: int,
                 findings: Findings) -> None:
        self.txn, self.dbs, self.info, self.f = txn, dbs, info, findings
        self.prefix = info.prefix
        self.config = text_index_from_dict(info.index)
        self.db = dbs.get("postings")
        self.on = self.db is not None
        self.watermark = watermark
        self.stats = postings.TextStats()
        self.expected = (np.zeros(watermark, dtype=np.int64), np.zeros(watermark, dtype=np.uint64))
        self._terms: list[str] = []  # pending postings: term, tf, and per document
        self._tfs: list[int] = []    # (row, terms, length)
        self._docs: list[tuple[int, int, int]] = []

    def add(self, row: int, metadata: dict | None, document: str | None) -> None:
        if not (self.on and self.config is not None and document):
            return
        counts = counts_for(self.config, document)
        length = sum(counts.values())
        if not length:
            return
        self.stats.docs += 1
        self.stats.terms += length
        if any(len(term) > SHORT_TERM for term in counts):  # keys cut and merged: as stored
            counts = {key[len(self.prefix):].decode("utf-8"): postings.POSTING.unpack(v)[1]
                      for key, v in postings.entries(self.prefix, row, counts,
                                                     postings.TextStats())}
        self._terms += counts
        self._tfs += counts.values()
        self._docs.append((row, len(counts), length))
        if len(self._terms) >= FLUSH_POSTINGS:
            self._flush()

    def _flush(self) -> None:
        if not self._docs:
            return
        docs = np.array(self._docs, dtype=np.int64)
        rows = np.repeat(docs[:, 0], docs[:, 1])
        hashes = posting_hashes(_hashes(self._terms), rows,
                                np.array(self._tfs, dtype=np.int64), np.repeat(docs[:, 2],
                                                                               docs[:, 1]))
        _accumulate(self.expected, rows, hashes)
        self._terms, self._tfs, self._docs = [], [], []

    # -- the stored side -------------------------------------------------------------------

    def _term_keys(self) -> list[bytes]:
        out = []
        with self.txn.cursor(db=self.db) as cur:
            if cur.set_range(self.prefix):
                for key in cur.iternext_nodup(keys=True, values=False):
                    if not key.startswith(self.prefix):
                        break
                    out.append(key)
        return out

    def _stored(self, term_keys: list[bytes]):
        """(key, postings array) of every term, in key order."""
        with self.txn.cursor(db=self.db) as cur:
            for key in term_keys:
                if not cur.set_key(key):
                    continue
                packed = cur.getmulti([key], dupdata=True, dupfixed_bytes=postings.POSTING.size,
                                      keyfixed=True)
                dtype = np.dtype([("key", f"V{len(key)}"), *postings.POSTING_DTYPE.descr])
                yield key, np.frombuffer(packed, dtype=dtype)

    def compare(self, scan: CollectionScan) -> None:
        """Reports every difference between LMDB and the recomputation."""
        if not self.on:
            return
        self._flush()
        name, w = self.info.name, self.watermark
        stored = (np.zeros(w, dtype=np.int64), np.zeros(w, dtype=np.uint64))
        term_keys = self._term_keys()
        past: list[int] = []
        total = 0
        chunks: list[tuple[np.ndarray, np.ndarray]] = []
        held = 0
        for key, arr in self._stored(term_keys):
            rows = arr["row"].astype(np.uint64)
            total += len(rows)
            inside = rows < np.uint64(w)
            if not inside.all():
                past += rows[~inside][:MAX_PER_GROUP].astype(np.int64).tolist()
                arr, rows = arr[inside], rows[inside]
            hashes = posting_hashes(np.full(len(rows), _term_hash(key, self.prefix),
                                            dtype=np.int64)
                                    .view(np.uint64), rows, arr["tf"], arr["dl"])
            chunks.append((rows.astype(np.int64), hashes))
            held += len(rows)
            if held >= FLUSH_POSTINGS:
                _accumulate(stored, *_joined(chunks))
                chunks, held = [], 0
        if chunks:
            _accumulate(stored, *_joined(chunks))
        if self.config is None:
            if total:
                self.f.add(name, "postings", f"the collection has no text index, yet {total} "
                           f"postings of it are stored", True)
        else:
            if past:
                self.f.add(name, "postings", f"postings name rows past the watermark "
                           f"W = {w} (rows {sorted(set(past))})", True)
            differ = np.flatnonzero((stored[0] != self.expected[0]) |
                                    (stored[1] != self.expected[1]))
            self._report_rows(scan, differ, stored, term_keys)
        self._compare_stats()

    def _report_rows(self, scan: CollectionScan, differ: np.ndarray, stored: Any,
                     term_keys: list[bytes]) -> None:
        if not len(differ):
            return
        detail = differ[:MAX_PER_GROUP]
        found = self._stored_of(set(detail.tolist()), term_keys)
        for row in differ.tolist():
            message = f"row {row}{scan.id_of(row)}: {stored[0][row]} postings stored, " \
                      f"{self.expected[0][row]} expected from its document"
            if row in found:
                message += self._diff(row, found[row], scan)
            self.f.add(self.info.name, "postings", message, True, kind="postings_row")

    def _stored_of(self, rows: set[int], term_keys: list[bytes]) -> dict[int, set[tuple]]:
        """(term key, tf, length) stored for each of the given rows (a second pass)."""
        out: dict[int, set[tuple]] = {r: set() for r in rows}
        wanted = np.array(sorted(rows), dtype=np.uint64)
        for key, arr in self._stored(term_keys):
            for p in arr[np.isin(arr["row"].astype(np.uint64), wanted)].tolist():
                out[int(p[1])].add((key, int(p[2]), int(p[3])))
        return out

    def _diff(self, row: int, stored: set[tuple], scan: CollectionScan) -> str:
        expected = set()
        if scan.live[row]:
            raw = self.txn.get(keys.row_key(self.prefix, row), db=self.dbs["rows"])
            document = decode_record(raw)[2] if raw is not None else None
            for key, value in recompute_postings(self.prefix, row, document, self.config,
                                                 postings.TextStats()):
                _, tf, dl = postings.POSTING.unpack(value)
                expected.add((key, tf, dl))
        parts = [f"missing {_term(k)} (tf {tf}, length {dl})"
                 for k, tf, dl in sorted(expected - stored)]
        parts += [f"unexpected {_term(k)} (tf {tf}, length {dl})"
                  for k, tf, dl in sorted(stored - expected)]
        return (": " + "; ".join(parts[:5]) + (" ..." if len(parts) > 5 else "")) if parts else ""

    def _compare_stats(self) -> None:
        name = self.info.name
        raw = self.txn.get(b"text" + self.prefix, db=self.dbs["meta"])
        if self.config is None:
            if raw is not None:
                self.f.add(name, "postings", "the collection has no text index, yet text "
                           "statistics of it are stored", True)
            return
        try:
            have = postings.TextStats.load(self.txn, self.dbs["meta"], self.prefix)
        except struct.error as e:  # a value of the wrong size
            self.f.add(name, "postings", f"the text statistics cannot be read ({e})", True)
            return
        if (have.docs, have.terms) != (self.stats.docs, self.stats.terms):
            self.f.add(name, "postings", f"the text statistics say {have.docs} documents and "
                       f"{have.terms} terms; the live documents hold {self.stats.docs} and "
                       f"{self.stats.terms}", True)


def _term(key: bytes) -> str:
    return repr(key[4:].decode("utf-8", "replace"))


def _joined(chunks: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def _accumulate(into: tuple[np.ndarray, np.ndarray], rows: np.ndarray,
                hashes: np.ndarray) -> None:
    counts, sums = into
    counts += np.bincount(rows, minlength=len(counts))[:len(counts)]
    np.add.at(sums, rows, hashes)
