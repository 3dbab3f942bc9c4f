"""vacuum(): compact a collection's rows into a new generation, dropping tombstoned rows.

Steps, all under the database's write lock:
  1. copy the live rows (vectors and id column), in order, into a fresh generation folder and
     fsync;
  2. build the index over them (the graph in parallel; the codes or the IVF-PQ lists with
     the quantizer and centroids already trained, or trained when the rows call for it)
     and write its checkpoints there, and the filter columns renumbered (when loaded);
  3. one LMDB transaction renumbers every live id and record to its new row, clears the
     tombstone and edit logs and stores (W = live, T = 0, G + 1, E = 0) — the commit point;
  4. swap the collection's RowSet and delete the old generation's folder.
A crash before 3 leaves an unused folder (deleted at the next writable open); after 3, the old
folder (same). Readers holding the old RowSet notice the new generation in their next LMDB
transaction and search again (collection.py, invariant 4).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

from .storage import keys, postings, records
from .textindex import TextWriter
from .rowset import RowSet, generation_dir, remove_generation_dirs

if TYPE_CHECKING:  # pragma: no cover
    from .collection import Collection

COPY_CHUNK_ROWS = 1 << 16


def vacuum(col: "Collection", on_total: Optional[Callable[[int], Any]] = None,
           on_rows: Optional[Callable[[int], Any]] = None) -> Dict[str, Any]:
    """Runs the steps of the module docstring; returns what it did. Progress: on_total(n)
    once with the work to do (3 x the live rows: copy, index, renumber), on_rows(n) as it
    advances."""
    t0 = time.perf_counter()
    with col._writing():
        old = col._rows
        live = old.live_rows()
        base = col._base_dir
        gen = old.gen + 1
        remove_generation_dirs(base, keep=old.gen)  # leftovers of an interrupted vacuum
        new = RowSet(base, col._info, col._config, gen, writable=True,  # always fsynced
                     quantization=col._quantization)
        advance = on_rows or (lambda n: None)
        if on_total is not None:
            on_total(3 * len(live))
        for start in range(0, len(live), COPY_CHUNK_ROWS):
            chunk = live[start:start + COPY_CHUNK_ROWS]
            new.store.append(start, old.store.read(chunk, old.watermark))
            new.idcol.append(start, old.idcol.read(chunk, old.watermark))
            advance(len(chunk))
        new.sync()
        new.apply(len(live), 0, [], 0)
        new.build_index(previous=old, on_rows=advance)  # anew; a trained quantizer is kept
        env, dbs, prefix = col._db._env, col._db._env.dbs, col._prefix
        old.filters.carry_over(env, prefix, live, new.filters)

        def transaction(txn: Any) -> None:
            postings.drop(txn, dbs["postings"], dbs["meta"], prefix)  # rows are renumbered
            text = TextWriter(txn, dbs, prefix, col._text_index)
            for new_row, old_row in enumerate(live.tolist()):
                old_key = keys.row_key(prefix, old_row)
                record = txn.get(old_key, db=dbs["rows"])
                txn.delete(old_key, db=dbs["rows"])
                txn.put(keys.row_key(prefix, new_row), record, db=dbs["rows"])
                text.add_record(new_row, record)
                ext_id = records.decode_id(record)
                txn.put(keys.id_key(prefix, ext_id), keys.pack_u64(new_row), db=dbs["ids"])
            for table in ("tombs", "edits"):  # logs of the old generation's rows
                with txn.cursor(db=dbs[table]) as cur:
                    if cur.set_range(prefix):
                        while cur.key().startswith(prefix) and cur.delete():
                            pass
            text.finish()
            txn.put(prefix, keys.pack_state(len(live), 0, gen, 0), db=dbs["state"])

        env.write(transaction, sync=True)
        advance(len(live))  # after the commit: a retried transaction must not count twice
        col._rows = new  # the old RowSet is dropped, not closed: running reads may hold it
        remove_generation_dirs(base, keep=gen)
    return {"rows_before": old.watermark, "rows_after": len(live),
            "removed": int(old.watermark - len(live)), "generation": gen,
            "directory": generation_dir(base, gen), "seconds": time.perf_counter() - t0}

