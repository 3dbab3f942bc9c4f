"""A consistent snapshot of a collection's live items, read in batches for an export.

Taking it: under the database's write lock (writable handles; read-only handles retry
instead), the RowSet's state (generation G, watermark W, tombstones T, edits E) is read, the
filter (if any) evaluated into a Selection on that very state, and one LMDB read transaction
opened; it is kept only if the state it sees is the RowSet's (G, W, T, E). Reading: the
records of the live rows in row (insertion) order from that transaction, and their vectors
from the RowSet's segments, whose rows below W never change in a generation.

Invariants:
 1. Everything read comes from one committed state: the transaction's, which is also the
    state the selection and the mapped segment rows belong to. Writes committed after it
    (in other threads or processes) are not seen; a vacuum meanwhile does not matter either
    (the snapshot keeps the old RowSet, whose files stay open while it is held).
 2. No other LMDB transaction is opened in this thread while the snapshot's is open (a
    second one could wait forever on a map resize that waits for the first).
 3. count is exact: the number of items batches() yields.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CollectionNotFoundError, DatabaseLockedError
from ..index.filter_columns import GenerationMoved
from ..query import filters
from ..query.selection import Selection, select
from ..storage import keys, records
from .formats import Items

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Self

    from ..collection import Collection
    from ..rowset import RowSet

SNAPSHOT_PATIENCE_S = 30.0  # read-only handles: give up retrying after this long
SELECTION_CHUNK_ROWS = 1 << 16  # a multiple of 64: bitset words are sliced per chunk


def _rows_state(rows: RowSet) -> tuple[int, int, int, int]:
    """(G, W, T, E) of rows, read at once."""
    with rows._lock:
        return rows.gen, rows.watermark, rows.tomb_seq, rows.edit_seq


class CollectionSnapshot:
    """The live items of col (those node allows) as of one committed state; a context
    manager holding an LMDB read transaction (see the module docstring).

    >>> with CollectionSnapshot(col, filters.ALL) as snap:  # doctest: +SKIP
    ...     total = sum(len(items) for items in snap.batches(1000))
    >>> total == snap.count  # doctest: +SKIP
    True
    """

    def __init__(self, col: Collection, node: filters.Node) -> None:
        self._col = col
        self._node = node
        self._reader: Any = None
        self._txn: Any = None
        self._rows: RowSet | None = None
        self._selection: Selection | None = None
        self._watermark = 0
        self.count = 0
        self.id_kind: str | None = None  # "int", "str", "mixed" or None (empty)

    def __enter__(self) -> Self:
        self._take()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._reader is not None:
            reader, self._reader, self._txn = self._reader, None, None
            reader.__exit__(None, None, None)

    def _take(self) -> None:
        col = self._col
        db, env, prefix = col._db, col._db._env, col._prefix
        env.reserve()  # the export's transaction stays open: writes must not need to grow
        deadline = time.monotonic() + SNAPSHOT_PATIENCE_S
        attempt = 0
        while True:
            with nullcontext() if db.readonly else db._write_lock:
                if self._try_take(col, env, prefix):
                    return
            attempt += 1
            if time.monotonic() > deadline:
                raise DatabaseLockedError(
                    f"export: collection {col.name!r} changed under each of {attempt} "
                    f"attempts to take a consistent snapshot (another process writes without "
                    f"pause); retry later")
            time.sleep(min(0.05, 0.001 * attempt))

    def _try_take(self, col: Collection, env: Any, prefix: bytes) -> bool:
        rows = col._current()
        state = _rows_state(rows)
        selection = None
        if self._node != filters.ALL:
            try:
                selection = select(env, prefix, rows, self._node)
            except GenerationMoved:
                return False
            if _rows_state(rows) != state or selection.n_rows != state[1]:
                return False
        reader = env.read()
        txn = reader.__enter__()
        try:
            raw = txn.get(prefix, db=env.dbs["state"])
            if raw is None:
                raise CollectionNotFoundError(f"collection {col.name!r} was dropped")
            watermark, tomb_seq, gen, edit_seq = keys.unpack_state(raw)
            if (gen, watermark, tomb_seq, edit_seq) != state:
                reader.__exit__(None, None, None)
                return False
            self.id_kind = self._id_kind(txn, env, prefix)
        except BaseException:
            reader.__exit__(None, None, None)
            raise
        self._reader, self._txn, self._rows, self._selection = reader, txn, rows, selection
        self._watermark = watermark
        self.count = watermark - tomb_seq if selection is None else selection.matches
        return True

    @staticmethod
    def _id_kind(txn: Any, env: Any, prefix: bytes) -> str | None:
        """The kinds of ids the collection holds, from the id map's key ranges (int keys
        start with b"i", str keys with b"s")."""
        found = []
        with txn.cursor(db=env.dbs["ids"]) as cur:
            for tag in (b"i", b"s"):
                start = prefix + tag
                found.append(cur.set_range(start) and cur.key().startswith(start))
        has_int, has_str = found
        return "mixed" if has_int and has_str else "int" if has_int else \
            "str" if has_str else None

    def _records(self) -> Iterator[tuple[int, bytes]]:
        """(row, record) of the snapshot's items, in row order."""
        env, prefix, txn = self._col._db._env, self._col._prefix, self._txn
        rows_db = env.dbs["rows"]
        selection = self._selection
        if selection is None:
            with txn.cursor(db=rows_db) as cur:
                if not cur.set_range(prefix):
                    return
                for key, value in cur:
                    if not key.startswith(prefix):
                        return
                    yield keys.key_row(key), value
            return
        bits = selection.bits
        for start in range(0, selection.n_rows, SELECTION_CHUNK_ROWS):
            count = min(SELECTION_CHUNK_ROWS, selection.n_rows - start)
            words = bits[start // 64:(start + count + 63) // 64]
            mask = np.unpackbits(words.view(np.uint8), count=count, bitorder="little")
            for row in (np.flatnonzero(mask) + start).tolist():
                value = txn.get(keys.row_key(prefix, row), db=rows_db)
                if value is not None:  # always, by invariant 1
                    yield row, value

    def batches(self, batch_size: int) -> Iterator[Items]:
        """Items (float32 vectors as stored) of at most batch_size, in row order."""
        rows, watermark = self._rows, self._watermark
        done = 0
        buf: list[tuple[int, bytes]] = []

        def items() -> Items:
            vectors = rows.store.read([r for r, _ in buf], watermark)
            decoded = [records.decode(value) for _, value in buf]
            return Items([d[0] for d in decoded], vectors, [d[1] for d in decoded],
                         [d[2] for d in decoded], first=done)

        for record in self._records():
            buf.append(record)
            if len(buf) >= batch_size:
                batch = items()
                done += len(buf)
                buf = []
                yield batch
        if buf:
            yield items()
