"""Filter columns: metadata fields and document text of every row, in columnar arrays.

The columns are a derived cache of the records in LMDB (rebuildable from them at any time):
query/evaluate.py turns a filter into a row mask from them with a few numpy passes, never
reading a payload. One ColumnStore belongs to one row generation (rowset.py).

A field's values, one per row, are typed by a kind code and an 8-byte value:
    MISSING  the row lacks the field            NULL   None
    BOOL     0 / 1                              INT    int64
    FLOAT    float64 bits                       STR    code in the field's dictionary
    LIST     id of a list in the field's list store (its elements: kind + value each,
             owner = list id; offsets are implicit in the owner column, ascending)
Layouts: a field starts *sparse* (entries: row, kind, value; for fields few rows have) and
turns *dense* (kinds and values indexed by row; MISSING = 0, so new rows cost nothing) once
more than 1/DENSE_SHARE of the rows have it. Document text lives in chunks of pieces, each
piece one row's document followed by a NUL byte; ``doc_piece[row]`` = piece id + 1 (0: none).

Invariants:
 1. The store reflects rows [0, watermark) and the first ``edit_seq`` entries of the edit
    log; ``set_rows`` replaces whole rows (every field, and the document), so replaying a
    row twice is harmless.
 2. ``counts[kind]`` of a field is the number of rows whose current value has that kind
    (MISSING excluded): evaluation skips kind tests when one kind covers every row.
 3. Arrays only grow; a grown array is a new copy, so an evaluation holding the old one
    reads consistent (older) values. Callers serialize writers with evaluations anyway
    (filtering.py holds the store's lock for both).
 4. Strings of a field, inside lists or not, share one dictionary; codes never change.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

MISSING, NULL, BOOL, INT, FLOAT, STR, LIST = range(7)
N_KINDS = 7
DENSE_SHARE = 8           # sparse -> dense when more than 1/8 of the rows have the field
TEXT_CHUNK_BYTES = 64 << 20


def _grow(array: np.ndarray, need: int) -> np.ndarray:
    """array, or a zero-padded copy with room for at least need items."""
    if need <= len(array):
        return array
    out = np.zeros(max(need, 2 * len(array), 64), dtype=array.dtype)
    out[: len(array)] = array
    return out


class Dictionary:
    """The strings of one field: code -> str, str -> code, and a rank order for ranges."""

    def __init__(self, strings: Sequence[str] = ()) -> None:
        self.strings: List[str] = list(strings)
        self.codes: Dict[str, int] = {s: i for i, s in enumerate(self.strings)}
        self._rank: Optional[np.ndarray] = None
        self._sorted: Optional[List[str]] = None

    def code(self, s: str) -> int:
        c = self.codes.get(s)
        if c is None:
            c = self.codes[s] = len(self.strings)
            self.strings.append(s)
            self._rank = self._sorted = None
        return c

    def ranks(self) -> Tuple[np.ndarray, List[str]]:
        """(rank of each code in sorted order, the sorted strings), cached until a new string."""
        if self._rank is None:
            order = sorted(range(len(self.strings)), key=self.strings.__getitem__)
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            self._sorted = [self.strings[i] for i in order]
            self._rank = rank
        return self._rank, self._sorted


class Field:
    """The column of one metadata field (see the module docstring for kinds and layouts)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dense = False
        self.kinds = np.zeros(0, dtype=np.uint8)
        self.vals = np.zeros(0, dtype=np.int64)
        self.rows = np.zeros(0, dtype=np.int64)   # sparse only: the row of each entry
        self.n_entries = 0                        # sparse only
        self._entry_of: Optional[Dict[int, int]] = None  # sparse only: row -> entry (lazy)
        self.counts = np.zeros(N_KINDS, dtype=np.int64)
        self.dictionary = Dictionary()
        self.elem_owner = np.zeros(0, dtype=np.int64)
        self.elem_kinds = np.zeros(0, dtype=np.uint8)
        self.elem_vals = np.zeros(0, dtype=np.int64)
        self.n_elems = 0
        self.n_lists = 0

    # -- reading -----------------------------------------------------------------------------

    def entries(self, n_rows: int) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """(kinds, vals, rows) of the current entries; rows None when dense (entry = row)."""
        if self.dense:
            n = min(n_rows, len(self.kinds))
            return self.kinds[:n], self.vals[:n], None
        n = self.n_entries
        return self.kinds[:n], self.vals[:n], self.rows[:n]

    def elements(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(owner list id, kinds, vals) of every list element stored (live or replaced)."""
        n = self.n_elems
        return self.elem_owner[:n], self.elem_kinds[:n], self.elem_vals[:n]

    def present(self) -> int:
        return int(self.counts[1:].sum())

    # -- writing -----------------------------------------------------------------------------

    def encode(self, value: Any) -> Tuple[int, int]:
        """(kind, 8-byte value) of a metadata value; lists are added to the list store."""
        t = type(value)
        if t is str:
            return STR, self.dictionary.code(value)
        if t is int:
            return INT, value
        if t is float:
            return FLOAT, _float_bits(value)
        if t is bool:
            return BOOL, int(value)
        if value is None:
            return NULL, 0
        if t is list or t is tuple:
            return LIST, self._add_list(value)
        raise TypeError(f"unsupported metadata value {value!r}")  # validated before storage

    def _add_list(self, items: Sequence[Any]) -> int:
        list_id = self.n_lists
        self.n_lists += 1
        n, m = self.n_elems, len(items)
        if m:
            self.elem_owner = _grow(self.elem_owner, n + m)
            self.elem_kinds = _grow(self.elem_kinds, n + m)
            self.elem_vals = _grow(self.elem_vals, n + m)
            for j, item in enumerate(items):
                kind, val = self.encode(item)
                self.elem_kinds[n + j] = kind
                self.elem_vals[n + j] = val
            self.elem_owner[n:n + m] = list_id
            self.n_elems = n + m
        return list_id

    def set(self, rows: Sequence[int], kinds: np.ndarray, vals: np.ndarray, n_rows: int) -> None:
        """Sets the values of the given distinct rows (kind MISSING clears a row)."""
        rows_arr = np.asarray(rows, dtype=np.int64)
        if not self.dense:
            self._set_sparse(rows_arr, kinds, vals)
            if self.n_entries * DENSE_SHARE > n_rows:
                self._densify(n_rows)
            return
        self.kinds = _grow(self.kinds, n_rows)
        self.vals = _grow(self.vals, n_rows)
        old = self.kinds[rows_arr]
        self.counts -= np.bincount(old, minlength=N_KINDS)
        self.kinds[rows_arr] = kinds
        self.vals[rows_arr] = vals
        self.counts += np.bincount(kinds, minlength=N_KINDS)
        self.counts[MISSING] = 0

    def _set_sparse(self, rows: np.ndarray, kinds: np.ndarray, vals: np.ndarray) -> None:
        entry_of = self._entry_index()
        new_rows, new_kinds, new_vals = [], [], []
        for r, k, v in zip(rows.tolist(), kinds.tolist(), vals.tolist()):
            e = entry_of.get(r)
            if e is None:
                if k != MISSING:
                    new_rows.append(r)
                    new_kinds.append(k)
                    new_vals.append(v)
                    self.counts[k] += 1
                continue
            self.counts[self.kinds[e]] -= 1
            self.kinds[e] = k
            self.vals[e] = v
            if k != MISSING:
                self.counts[k] += 1
        self.counts[MISSING] = 0
        if new_rows:
            n, m = self.n_entries, len(new_rows)
            self.rows = _grow(self.rows, n + m)
            self.kinds = _grow(self.kinds, n + m)
            self.vals = _grow(self.vals, n + m)
            self.rows[n:n + m] = new_rows
            self.kinds[n:n + m] = new_kinds
            self.vals[n:n + m] = np.asarray(new_vals, dtype=np.int64)
            for j, r in enumerate(new_rows):
                entry_of[r] = n + j
            self.n_entries = n + m

    def _entry_index(self) -> Dict[int, int]:
        if self._entry_of is None:
            self._entry_of = {r: e for e, r in enumerate(self.rows[: self.n_entries].tolist())}
        return self._entry_of

    def _densify(self, n_rows: int) -> None:
        kinds = np.zeros(max(n_rows, 64), dtype=np.uint8)
        vals = np.zeros(len(kinds), dtype=np.int64)
        n = self.n_entries
        kinds[self.rows[:n]] = self.kinds[:n]
        vals[self.rows[:n]] = self.vals[:n]
        self.kinds, self.vals, self.dense = kinds, vals, True
        self.rows, self.n_entries, self._entry_of = np.zeros(0, dtype=np.int64), 0, None


class TextColumn:
    """Document text of every row, as NUL-terminated pieces in append-only chunks."""

    def __init__(self) -> None:
        self.doc_piece = np.zeros(0, dtype=np.int64)   # per row: piece id + 1, 0 = none
        # chunk: (buffer with .find(), piece id of its first piece, starts, ends)
        self.chunks: List[List[Any]] = []
        self.n_pieces = 0
        self._open: Optional[bytearray] = None          # the chunk new pieces go to
        self._starts: List[int] = []
        self._ends: List[int] = []

    def set(self, rows: Sequence[int], documents: Sequence[Optional[str]], n_rows: int) -> None:
        self.doc_piece = _grow(self.doc_piece, n_rows)
        for row, doc in zip(rows, documents):
            if doc is None:
                self.doc_piece[row] = 0
                continue
            raw = doc.encode("utf-8")
            if self._open is None or len(self._open) + len(raw) > TEXT_CHUNK_BYTES:
                self._start_chunk()
            start = len(self._open)
            self._open += raw
            self._open.append(0)
            self._starts.append(start)
            self._ends.append(start + len(raw))
            self.n_pieces += 1
            self.doc_piece[row] = self.n_pieces  # piece id + 1

    def _start_chunk(self) -> None:
        self._seal()
        self._open = bytearray()
        self._starts, self._ends = [], []
        self.chunks.append([self._open, self.n_pieces, None, None])

    def _seal(self) -> None:
        """Brings the open chunk's piece arrays up to date."""
        if self._open is not None:
            chunk = self.chunks[-1]
            chunk[2] = np.asarray(self._starts, dtype=np.int64)
            chunk[3] = np.asarray(self._ends, dtype=np.int64)

    def add_loaded_chunk(self, buffer: Any, first: int, starts: np.ndarray,
                         ends: np.ndarray) -> None:
        self.chunks.append([buffer, first, starts, ends])
        self.n_pieces = first + len(starts)

    def pieces_containing(self, needle: str) -> np.ndarray:
        """Bool per piece id: the piece's text contains needle."""
        self._seal()
        hit = np.zeros(self.n_pieces, dtype=bool)
        raw = needle.encode("utf-8")
        for buffer, first, starts, ends in self.chunks:
            if starts is None or not len(starts):
                continue
            pos, end_all = int(starts[0]), int(ends[-1])  # a loaded chunk's buffer is the file
            while True:
                p = buffer.find(raw, pos, end_all)
                if p < 0:
                    break
                i = int(np.searchsorted(starts, p, side="right")) - 1
                if i >= 0 and p + len(raw) <= ends[i]:
                    hit[first + i] = True
                    pos = int(ends[i]) + 1  # the next piece
                else:
                    pos = p + 1
        return hit

    def rows_containing(self, needle: str, n_rows: int) -> np.ndarray:
        """Bool per row in [0, n_rows): its current document contains needle."""
        hit = np.concatenate(([False], self.pieces_containing(needle)))
        pieces = self.doc_piece[:n_rows]
        out = hit[pieces] if len(pieces) else np.zeros(0, dtype=bool)
        if len(out) < n_rows:
            out = np.concatenate((out, np.zeros(n_rows - len(out), dtype=bool)))
        return out

    def sealed_chunks(self) -> List[List[Any]]:
        self._seal()
        return self.chunks


class ColumnStore:
    """Every field column and the text column of one row generation (module docstring).

    A store loaded from a checkpoint (colfile.py) materializes a field, and the text column,
    on first use: a field never filtered on is never read (nor checked)."""

    def __init__(self) -> None:
        self.fields: Dict[str, Field] = {}
        self._deferred: Dict[str, Callable[[], Field]] = {}
        self._text: Optional[TextColumn] = TextColumn()
        self._deferred_text: Optional[Callable[[], TextColumn]] = None
        self.watermark = 0
        self.edit_seq = 0

    def field(self, name: str) -> Optional[Field]:
        f = self.fields.get(name)
        if f is None and name in self._deferred:
            f = self.fields[name] = self._deferred.pop(name)()
        return f

    def field_names(self) -> List[str]:
        return [*self.fields, *self._deferred]

    def defer_field(self, name: str, load: Callable[[], Field]) -> None:
        self._deferred[name] = load

    @property
    def text(self) -> TextColumn:
        if self._text is None:
            self._text = self._deferred_text()
            self._deferred_text = None
        return self._text

    def defer_text(self, load: Callable[[], TextColumn]) -> None:
        self._text, self._deferred_text = None, load

    def set_rows(self, rows: Sequence[int], metadatas: Sequence[Optional[dict]],
                 documents: Sequence[Optional[str]], n_rows: int) -> None:
        """Replaces the metadata and document of the given distinct rows (all < n_rows)."""
        if not len(rows):
            return
        by_field: Dict[str, Tuple[List[int], List[Any]]] = {}
        for row, meta in zip(rows, metadatas):
            if meta:
                for key, value in meta.items():
                    entry = by_field.get(key)
                    if entry is None:
                        entry = by_field[key] = ([], [])
                    entry[0].append(row)
                    entry[1].append(value)
        replacing = any(r < self.watermark for r in rows)
        for name, (frows, values) in by_field.items():
            field = self.field(name)
            if field is None:
                field = self.fields[name] = Field(name)
            kinds, vals = _encode_values(field, values)
            field.set(frows, kinds, vals, n_rows)
        if replacing:
            self._clear_missing(rows, metadatas, n_rows)
        self.text.set(rows, documents, n_rows)

    def _clear_missing(self, rows: Sequence[int], metadatas: Sequence[Optional[dict]],
                       n_rows: int) -> None:
        """Clears, for replaced rows, the fields their new metadata no longer has."""
        old_rows = [(r, m or {}) for r, m in zip(rows, metadatas) if r < self.watermark]
        for name in self.field_names():
            field = self.field(name)
            gone = [r for r, m in old_rows if name not in m]
            if gone:
                field.set(gone, np.zeros(len(gone), dtype=np.uint8),
                          np.zeros(len(gone), dtype=np.int64), n_rows)

    def renumbered(self, live: np.ndarray) -> "ColumnStore":
        """A store of the given rows only (ascending), renumbered 0, 1, ... (for vacuum).
        List elements, strings and document text are shared with this store."""
        out = ColumnStore()
        out.watermark = len(live)
        for name in self.field_names():
            old = self.field(name)
            f = out.fields[name] = Field(name)
            f.dictionary = old.dictionary
            f.elem_owner, f.elem_kinds, f.elem_vals = (a.copy() for a in old.elements())
            f.n_elems, f.n_lists = old.n_elems, old.n_lists
            kinds, vals, rows = old.entries(self.watermark)
            if rows is None:
                f.dense = True
                inside = live[live < len(kinds)]
                f.kinds = np.zeros(len(live), dtype=np.uint8)
                f.vals = np.zeros(len(live), dtype=np.int64)
                f.kinds[: len(inside)], f.vals[: len(inside)] = kinds[inside], vals[inside]
            else:
                pos = np.searchsorted(live, rows)
                keep = (pos < len(live)) & (live[np.minimum(pos, len(live) - 1)] == rows) & \
                    (kinds != MISSING) if len(live) else np.zeros(len(rows), dtype=bool)
                f.rows, f.kinds, f.vals = pos[keep], kinds[keep], vals[keep]
                f.n_entries = len(f.rows)
            f.counts = np.bincount(f.kinds, minlength=N_KINDS).astype(np.int64)
            f.counts[MISSING] = 0
        text = self.text
        text.sealed_chunks()
        out.text.chunks = [list(c) for c in text.chunks]
        out.text.n_pieces = text.n_pieces
        pieces = text.doc_piece
        out.text.doc_piece = np.zeros(len(live), dtype=np.int64)
        inside = live[live < len(pieces)]
        out.text.doc_piece[: len(inside)] = pieces[inside]
        return out

    def advance(self, watermark: int, edit_seq: int) -> None:
        """Records that rows [0, watermark) and edits [0, edit_seq) are in (invariant 1)."""
        self.watermark = max(self.watermark, watermark)
        self.edit_seq = max(self.edit_seq, edit_seq)


def _float_bits(value: float) -> int:
    return int(np.float64(value).view(np.int64))


def _encode_values(field: Field, values: Iterable[Any]) -> Tuple[np.ndarray, np.ndarray]:
    """(kinds uint8, vals int64) of a field's values; fast paths for uniform columns."""
    values = list(values)
    types = {type(v) for v in values}
    if types == {int}:
        return np.full(len(values), INT, dtype=np.uint8), np.asarray(values, dtype=np.int64)
    if types == {float}:
        return (np.full(len(values), FLOAT, dtype=np.uint8),
                np.asarray(values, dtype=np.float64).view(np.int64))
    if types == {str}:
        code = field.dictionary.code
        return (np.full(len(values), STR, dtype=np.uint8),
                np.fromiter((code(v) for v in values), dtype=np.int64, count=len(values)))
    kinds = np.empty(len(values), dtype=np.uint8)
    vals = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        kinds[i], vals[i] = field.encode(v)
    return kinds, vals
