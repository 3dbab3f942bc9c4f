"""The filter-columns part of the integrity check: the checkpoint ``filters.cols`` of a
generation (storage/colfile.py) loaded with every check of its loader, every field and the
text column forced (the loader checks them lazily), and compared with columns recomputed
from the LMDB records of the rows it covers (index/filter_columns.py).

The checkpoint covers rows [0, W_c) and the first E_c entries of the edit log. A row is
compared when it is live now, lies below W_c and was not edited after entry E_c (those the
next catch-up replays); tombstoned rows are never read by a filter, so stale values there
are not damage.

Invariants:
 1. Values are compared by meaning, not by encoding: string codes through the two
    dictionaries, list values element by element, documents byte for byte.
 2. It only reads (the checkpoint through a private copy-on-write mapping).

    >>> fc = FiltersCheck(gen_dir, "collections/ab12", "docs", findings)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import struct
from typing import Any

import numpy as np

from ..errors import VecDBError
from ..storage import colfile
from ..storage.columns import (
    BOOL,
    FLOAT,
    INT,
    LIST,
    MISSING,
    NULL,
    STR,
    ColumnStore,
    Field,
    TextColumn,
)
from .check_lmdb import CollectionScan
from .check_report import MAX_PER_GROUP, Findings

APPLY_BATCH = 8192


class FiltersCheck:
    """Loads a generation's checkpoint (if any); ``prepare(scan)`` after the logs were read,
    ``add(row, metadata, document)`` per live row, then ``compare(scan)``."""

    def __init__(self, gen_dir: str, rel_dir: str, name: str, findings: Findings) -> None:
        self.name, self.f = name, findings
        self.rel = f"{rel_dir}/{colfile.FILE_NAME}"
        self.exists = os.path.exists(os.path.join(gen_dir, colfile.FILE_NAME))
        self.saved: ColumnStore | None = None
        self.fresh = ColumnStore()
        self._skip = np.zeros(0, dtype=bool)
        self._batch: tuple[list[int], list[Any], list[Any]] = ([], [], [])
        if not self.exists:
            return
        try:
            store = colfile.load(gen_dir)
            for field_name in store.field_names():
                store.field(field_name)
            _ = store.text
        except (VecDBError, ValueError, TypeError, KeyError, IndexError, struct.error) as e:
            self._add(f"{self.rel} cannot be used ({e})", "filters_file")
            return
        self.saved = store

    def _add(self, message: str, kind: str) -> None:
        self.f.add(self.name, "filters", message, True, kind=kind)

    def prepare(self, scan: CollectionScan) -> None:
        store = self.saved
        if store is None:
            return
        if store.watermark > scan.watermark or store.edit_seq > scan.edit_seq:
            self._add(f"{self.rel} covers {store.watermark} rows and {store.edit_seq} edits; "
                      f"LMDB holds only W = {scan.watermark} rows and E = {scan.edit_seq} "
                      f"edits", "filters_file")
            self.saved = None
            return
        self._skip = np.zeros(store.watermark, dtype=bool)
        edited = scan.edited_since(store.edit_seq)
        self._skip[edited[edited < store.watermark]] = True

    def add(self, row: int, metadata: dict | None, document: str | None) -> None:
        if self.saved is None or row >= len(self._skip) or self._skip[row]:
            return
        batch = self._batch
        batch[0].append(row)
        batch[1].append(metadata)
        batch[2].append(document)
        if len(batch[0]) >= APPLY_BATCH:
            self._flush()

    def _flush(self) -> None:
        rows, metas, docs = self._batch
        self._batch = ([], [], [])
        self.fresh.set_rows(rows, metas, docs, self.saved.watermark)

    def compare(self, scan: CollectionScan) -> None:
        if self.saved is None:
            return
        self._flush()
        n = self.saved.watermark
        compared = scan.live[:n] & ~self._skip
        names = list(dict.fromkeys(self.saved.field_names() + self.fresh.field_names()))
        for field_name in names:
            saved, fresh = self.saved.field(field_name), self.fresh.field(field_name)
            differ = np.flatnonzero(_field_differs(saved, fresh, n) & compared)
            shown = [(saved, _dense(saved, n)), (fresh, _dense(fresh, n))] if len(differ) else []
            for i, row in enumerate(differ.tolist()):
                values = [_shown(f, dense, row) for f, dense in shown] if i < MAX_PER_GROUP \
                    else ["?", "?"]  # past the cap: counted, not shown
                self._add(f"{self.rel}: field {field_name!r} of row {row}{scan.id_of(row)} "
                          f"is {values[0]} in the checkpoint, {values[1]} in its record",
                          "filters_value")
        saved_text, fresh_text = self.saved.text, self.fresh.text
        saved_chunks, fresh_chunks = saved_text.sealed_chunks(), fresh_text.sealed_chunks()
        for row in np.flatnonzero(compared).tolist():
            if _document(saved_text, saved_chunks, row) != \
                    _document(fresh_text, fresh_chunks, row):
                self._add(f"{self.rel}: the document of row {row}{scan.id_of(row)} differs "
                          f"from its record", "filters_document")


# -- values ---------------------------------------------------------------------------------

def _dense(field: Field | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(kinds, vals) of rows [0, n) (MISSING where the field has no entry)."""
    kinds = np.zeros(n, dtype=np.uint8)
    vals = np.zeros(n, dtype=np.int64)
    if field is None:
        return kinds, vals
    k, v, rows = field.entries(n)
    if rows is None:
        kinds[:len(k)], vals[:len(v)] = k, v
    else:
        keep = (rows >= 0) & (rows < n)
        kinds[rows[keep]], vals[rows[keep]] = k[keep], v[keep]
    return kinds, vals


def _string_map(saved: Field, fresh: Field | None) -> np.ndarray:
    """The fresh dictionary's code of every saved string (-1: it has no such string)."""
    codes = fresh.dictionary.codes if fresh is not None else {}
    return np.array([codes.get(s, -1) for s in saved.dictionary.strings] + [-2],
                    dtype=np.int64)


def _translate(kinds: np.ndarray, vals: np.ndarray, table: np.ndarray | None) -> np.ndarray:
    """vals with STR codes mapped through table (out-of-range codes become -2)."""
    if table is None:
        return vals
    out = vals.copy()
    is_str = kinds == STR
    codes = vals[is_str]
    codes = np.where((codes >= 0) & (codes < len(table) - 1), codes, len(table) - 1)
    out[is_str] = table[codes]
    return out


def _lists(field: Field, ids: np.ndarray, table: np.ndarray | None):
    """(lengths, element kinds, element vals) of the given list ids (-1 length: no such)."""
    owner, ek, ev = field.elements()
    lengths_all = np.bincount(owner, minlength=field.n_lists)[:max(field.n_lists, 0)] \
        if len(owner) else np.zeros(field.n_lists, dtype=np.int64)
    starts_all = np.cumsum(lengths_all) - lengths_all
    valid = (ids >= 0) & (ids < len(lengths_all))
    lengths = np.where(valid, lengths_all[np.where(valid, ids, 0)] if len(lengths_all) else 0,
                       -1)
    take = np.maximum(lengths, 0)
    starts = np.where(valid, starts_all[np.where(valid, ids, 0)] if len(starts_all) else 0, 0)
    index = np.repeat(starts - (np.cumsum(take) - take), take) + np.arange(int(take.sum()))
    kinds = ek[index]
    return lengths, kinds, _translate(kinds, ev[index], table)


def _field_differs(saved: Field | None, fresh: Field | None, n: int) -> np.ndarray:
    """Bool per row of [0, n): the two columns disagree on the row's value."""
    sk, sv = _dense(saved, n)
    fk, fv = _dense(fresh, n)
    table = _string_map(saved, fresh) if saved is not None else None
    sv = _translate(sk, sv, table)
    differ = sk != fk
    scalar = ~differ & (sk != LIST) & (sk != MISSING)
    differ[scalar] = sv[scalar] != fv[scalar]
    both_lists = np.flatnonzero(~differ & (sk == LIST))
    if len(both_lists):
        s_len, s_kinds, s_vals = _lists(saved, sv[both_lists], table)
        f_len, f_kinds, f_vals = _lists(fresh, fv[both_lists], None)
        same_len = s_len == f_len
        bad = ~same_len | (s_len < 0)
        if (same_len & (s_len > 0)).any():
            owner = np.repeat(np.arange(len(both_lists)), np.maximum(s_len, 0))
            s_take = np.repeat(same_len, np.maximum(s_len, 0))
            f_take = np.repeat(same_len, np.maximum(f_len, 0))
            elem_bad = (s_kinds[s_take] != f_kinds[f_take]) | (s_vals[s_take] != f_vals[f_take])
            bad |= np.bincount(owner[s_take], weights=elem_bad,
                               minlength=len(both_lists)) > 0
        differ[both_lists[bad]] = True
    return differ


def _shown(field: Field | None, dense: tuple[np.ndarray, np.ndarray], row: int) -> str:
    """A row's value of a field (its _dense arrays given) as a message shows it."""
    kinds, vals = dense
    kind, val = int(kinds[row]), int(vals[row])
    if kind == MISSING:
        return "missing"
    if kind == NULL:
        return "None"
    if kind == BOOL:
        return repr(bool(val))
    if kind == INT:
        return repr(val)
    if kind == FLOAT:
        return repr(float(np.int64(val).view(np.float64)))
    if kind == STR:
        strings = field.dictionary.strings
        return repr(strings[val]) if 0 <= val < len(strings) else f"<string code {val}>"
    if kind == LIST:
        return "a list"
    return f"<kind {kind}>"


def _document(text: TextColumn, chunks: list[Any], row: int) -> bytes | None:
    """The document bytes a text column (its sealed chunks given) holds for row (None:
    none)."""
    if row >= len(text.doc_piece) or not text.doc_piece[row]:
        return None
    piece = int(text.doc_piece[row]) - 1
    for buffer, first, starts, ends in chunks:
        if starts is not None and first <= piece < first + len(starts):
            i = piece - first
            return bytes(buffer[int(starts[i]):int(ends[i])])
    return b"\0<piece missing>"
