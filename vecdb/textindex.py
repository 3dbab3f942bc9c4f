"""The text index of a collection's documents, kept in step with its rows inside each write
transaction: a TextWriter turns "row r now holds record x" / "row r is gone" into postings
(storage/postings.py) of the tokens (query/tokenize.py) of the record's document.

Invariants:
 1. Every write transaction that stores, replaces or deletes a row record tells its
    TextWriter (``add`` / ``replace`` / ``remove``) before it commits, then calls ``finish``;
    postings and corpus statistics therefore commit, or vanish, with the rows.
 2. A row's postings are derived from its record's document only, so removing them
    re-tokenizes the old document and deletes exactly what adding it wrote.
 3. A collection created with ``text_index=False`` (or before text indexing existed) gets a
    disabled writer: nothing is written. Its BM25 config's stop words apply to documents and
    queries alike (counts_for).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .config import BM25
from .query.tokenize import ENGLISH_STOPWORDS, term_counts
from .storage import postings, records

TEXT_INDEX_KEY = "text_index"  # in the catalog's index map
STOPWORDS = {"english": ENGLISH_STOPWORDS}


def counts_for(config: BM25, text: str) -> Dict[str, int]:
    """The term counts a collection with this text index stores (and queries) for text."""
    return term_counts(text, stopwords=STOPWORDS.get(config.stopwords))


class TextWriter:
    """Postings updates of one write transaction of one collection (see module docstring)."""

    def __init__(self, txn: Any, dbs: Dict[str, Any], prefix: bytes,
                 config: Optional[BM25]) -> None:
        self.on = config is not None and dbs.get("postings") is not None
        self.config = config
        self.txn, self.prefix = txn, prefix
        self.db, self.meta = dbs.get("postings"), dbs["meta"]
        self._stats: Optional[postings.TextStats] = None  # read at the first change
        self.changed = False
        self._pending: List[Tuple[int, Dict[str, int]]] = []  # added (row, counts): finish()

    def add(self, row: int, document: Optional[str]) -> None:
        """Row row now holds a record with this document (None: none)."""
        if self.on and document:
            self._pending.append((row, counts_for(self.config, document)))
            self.changed = True

    def add_record(self, row: int, record: bytes) -> None:
        if self.on:
            self.add(row, records.decode(record)[2])

    def remove(self, row: int, record: Optional[bytes]) -> None:
        """Row row, which held record, is deleted or replaced."""
        if self.on and record is not None:
            document = records.decode(record)[2]
            if document:
                postings.remove(self.txn, self.db, self.prefix, row,
                                counts_for(self.config, document), self.stats)
                self.changed = True

    def replace(self, row: int, old: Optional[bytes], new: bytes) -> None:
        """Row row keeps its number but its record changes from old to new (update())."""
        if not self.on:
            return
        before = records.decode(old)[2] if old is not None else None
        after = records.decode(new)[2]
        if before != after:
            self.remove(row, old)
            self.add(row, after)

    @property
    def stats(self) -> postings.TextStats:
        """The corpus statistics, read from LMDB when first needed (a transaction that
        changes no document never reads them)."""
        if self._stats is None:
            self._stats = postings.TextStats.load(self.txn, self.meta, self.prefix)
        return self._stats

    def finish(self) -> None:
        """Stores the added postings, sorted, and the corpus statistics (call once, before
        the transaction commits). Removals are immediate: a row's postings are only ever
        removed before new ones of that row are added, within one transaction."""
        if self.on and self.changed:
            postings.put_documents(self.txn, self.db, self.prefix, self._pending, self.stats)
            self._pending = []
            self.stats.save(self.txn, self.meta, self.prefix)
