"""The LMDB side of the integrity check: the catalog against the state table and the keys of
every table, and per collection the row records, the ids table and the tombstone and edit
logs (collection.py, invariant 1), read in one snapshot.

What is the source of truth (collection.py, DESIGN.md section 3): the catalog and state
entries; the row records (id, metadata, document of each row < W) and the tombstone log.
Derived from them: the ids table (id -> the live row holding it), the postings and text
statistics (check_text.py), the filter columns (check_filters.py) and the id column
(check_files.py).

Invariants of this module:
 1. It only reads (one read transaction per collection, given by the caller).
 2. A finding is repairable only when repair rebuilds it from the sources of truth without
    losing anything they hold: a lost, unreadable or contradictory record (a tombstoned row
    that still holds one) is not; an ids entry, a tombstone log out of order or counted
    wrong, an edit log, keys of no collection are.

    >>> with db._env.read() as txn:  # doctest: +SKIP
    ...     scanner = CollectionScanner(txn, db._env.dbs, info, state, findings)
    ...     scanner.read_logs(); scanner.read_rows((), bar); scanner.judge_ids()
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zstandard

from ..errors import VecDBError
from ..storage import keys, records
from ..storage.catalog import CollectionInfo
from ..storage.segments import ID_NOT_INT
from .check_report import Findings

ROW_BATCH = 8192        # rows per progress update
KEYED_TABLES = ("rows", "ids", "tombs", "edits", "postings")
TEXT_STATS_KEY = b"text"  # storage/postings.py: meta key b"text" + cid prefix
State = tuple[int, int, int, int]


def id_text(key: bytes) -> str:
    """The external id of an ids-table key (cid prefix included), as a message shows it."""
    kind, body = key[4:5], key[5:]
    if kind == b"i" and len(body) == 8:
        return repr(int.from_bytes(body, "big") - 2**63)
    if kind == b"s":
        try:
            return repr(body.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    return f"<malformed key {key.hex()}>"


# what decoding damaged bytes (msgpack, zstandard, struct, UTF-8, our own checks) can raise
DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, struct.error,
                 zstandard.ZstdError, VecDBError)


def decode_record(value: bytes) -> tuple[Any, dict | None, str | None]:
    """records.decode plus the type checks a reader relies on; raises ValueError."""
    ext_id, meta, doc = records.decode(value)
    if type(ext_id) not in (int, str):
        raise ValueError(f"id of type {type(ext_id).__name__}")
    if meta is not None and not isinstance(meta, dict):
        raise ValueError(f"metadata of type {type(meta).__name__}")
    if doc is not None and not isinstance(doc, str):
        raise ValueError(f"document of type {type(doc).__name__}")
    return ext_id, meta, doc


# -- the catalog ----------------------------------------------------------------------------

@dataclass
class CatalogView:
    """The collections the catalog and state agree on, and what else was found."""

    collections: list[tuple[CollectionInfo, State]] = field(default_factory=list)
    intact: bool = True     # every catalog and state entry was understood
    uuids: set = field(default_factory=set)
    orphans: dict[str, list[bytes]] = field(default_factory=dict)  # table -> cid prefixes
    next_cid: int | None = None  # the value repair should store, when wrong


def check_catalog(txn: Any, dbs: dict[str, Any], findings: Findings) -> CatalogView:
    """Catalog entries <-> state entries, cids and uuids unique, next_cid past every cid, and
    keys of no collection in the keyed tables."""
    view = CatalogView()
    cids: dict[int, str] = {}
    with txn.cursor(db=dbs["catalog"]) as cur:
        for raw_name, raw in cur.iternext():
            try:
                name = raw_name.decode("utf-8")
                info = CollectionInfo.from_bytes(name, raw)
            except DECODE_ERRORS as e:  # msgpack, unicode, missing keys, newer format
                view.intact = False
                findings.add(None, "catalog", f"catalog entry {raw_name!r} cannot be read "
                             f"({type(e).__name__}: {e})", False)
                continue
            if info.cid in cids or info.uuid in view.uuids:
                view.intact = False
                findings.add(name, "catalog", f"collection {name!r} shares its number "
                             f"{info.cid} or folder {info.uuid} with another collection", False)
                continue
            cids[info.cid] = name
            view.uuids.add(info.uuid)
            raw_state = txn.get(info.prefix, db=dbs["state"])
            if raw_state is None:
                findings.add(name, "catalog", f"collection {name!r} (number {info.cid}) has "
                             f"a catalog entry but no state entry", False)
                continue
            if len(raw_state) not in (24, 32):
                findings.add(name, "state", f"the state entry of collection {name!r} is "
                             f"{len(raw_state)} bytes long (expected 24 or 32)", False)
                continue
            view.collections.append((info, keys.unpack_state(raw_state)))
    known = {keys.cid_prefix(c) for c in cids}
    with txn.cursor(db=dbs["state"]) as cur:
        for key in cur.iternext(keys=True, values=False):
            if key not in known:
                view.intact = False
                findings.add(None, "catalog", f"state entry {key.hex()} (collection number "
                             f"{_cid_of(key)}) has no catalog entry", False)
                known.add(key)  # its keys are kept: they are not orphans of a dropped one
    raw_next = txn.get(b"next_cid", db=dbs["meta"])
    next_cid = keys.unpack_u64(raw_next) if raw_next and len(raw_next) == 8 else 1
    top = max((_cid_of(p) for p in known), default=0)
    if top >= next_cid:
        view.next_cid = top + 1
        findings.add(None, "catalog", f"meta next_cid is {next_cid} but collection number "
                     f"{top} exists (a new collection would reuse a number)", True)
    for table in KEYED_TABLES:
        db = dbs.get(table)
        if db is None:
            continue
        for prefix, count in _orphans(txn, db, known, table == "postings").items():
            view.orphans.setdefault(table, []).append(prefix)
            findings.add(None, "catalog", f"table {table!r} holds {count} key(s) of collection "
                         f"number {_cid_of(prefix)}, which does not exist", True,
                         kind="orphans")
    with txn.cursor(db=dbs["meta"]) as cur:
        if cur.set_range(TEXT_STATS_KEY):
            for key in cur.iternext(keys=True, values=False):
                if not key.startswith(TEXT_STATS_KEY):
                    break
                prefix = key[len(TEXT_STATS_KEY):]
                if prefix not in known:
                    view.orphans.setdefault("meta", []).append(prefix)
                    findings.add(None, "catalog", f"text statistics of collection number "
                                 f"{_cid_of(prefix)}, which does not exist", True,
                                 kind="orphans")
    return view


def _cid_of(prefix: bytes) -> int:
    return int.from_bytes(prefix[:4].ljust(4, b"\0"), "big")


def _orphans(txn: Any, db: Any, known: set, dupsort: bool) -> dict[bytes, int]:
    """Entry count per cid prefix that is not known (jumping over the known ones)."""
    found: dict[bytes, int] = {}
    with txn.cursor(db=db) as cur:
        ok = cur.first()
        while ok:
            prefix = cur.key()[:4]
            if prefix in known:
                nxt = int.from_bytes(prefix, "big") + 1
                ok = nxt < 2**32 and cur.set_range(keys.cid_prefix(nxt))
                continue
            count = 0
            while ok and cur.key()[:4] == prefix:
                count += cur.count() if dupsort else 1
                ok = cur.next_nodup()
            found[prefix] = count
    return found


# -- one collection -------------------------------------------------------------------------

@dataclass
class CollectionScan:
    """What the LMDB tables of one collection say, for the file checks and the summary."""

    info: CollectionInfo
    watermark: int
    tomb_seq: int
    gen: int
    edit_seq: int
    tombstoned: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    live: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    int_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    edit_rows: list[tuple[int, int]] = field(default_factory=list)  # (seq, row)
    rec_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rec_keys: list[bytes] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.info.name

    def id_of(self, row: int) -> str:
        """' (id X)' for messages about row, or '' when it holds no readable record."""
        i = int(np.searchsorted(self.rec_rows, row))
        if i < len(self.rec_rows) and self.rec_rows[i] == row:
            return f" (id {id_text(self.rec_keys[i])})"
        return ""

    def edited_since(self, seq: int) -> np.ndarray:
        """The rows of edit-log entries numbered seq and later."""
        return np.array([r for s, r in self.edit_rows if s >= seq], dtype=np.int64)


class CollectionScanner:
    """Reads one collection in one read transaction: logs, then rows (feeding consumers:
    ``add(row, metadata, document)`` per live row), then judges the ids table."""

    def __init__(self, txn: Any, dbs: dict[str, Any], info: CollectionInfo, state: State,
                 findings: Findings) -> None:
        self.txn, self.dbs, self.info, self.f = txn, dbs, info, findings
        self.prefix = info.prefix
        w, t, g, e = state
        self.scan = CollectionScan(info, w, t, g, e)
        self.scan.tombstoned = np.zeros(w, dtype=bool)
        self.lost_or_unreadable: set = set()

    def _add(self, component: str, message: str, repairable: bool,
             kind: str | None = None) -> None:
        self.f.add(self.info.name, component, message, repairable, kind)

    def _prefixed(self, table: str) -> Any:
        """(key, value) of table under the collection's prefix, in key order."""
        db = self.dbs.get(table)
        if db is None:
            return
        with self.txn.cursor(db=db) as cur:
            if not cur.set_range(self.prefix):
                return
            for key, value in cur.iternext():
                if not key.startswith(self.prefix):
                    return
                yield key, value

    # -- logs ------------------------------------------------------------------------------

    def read_logs(self) -> None:
        s = self.scan
        tombs = self._log("tombs", "tombstones", "tombstone")
        if len(tombs) != s.tomb_seq:
            self._add("tombstones", f"the state counts {s.tomb_seq} tombstones, the tombstone "
                      f"log holds {len(tombs)}", True)
        seen: dict[int, list[int]] = {}
        for seq, row in tombs:
            if row >= s.watermark:
                self._add("tombstones", f"tombstone {seq} names row {row}, past the watermark "
                          f"W = {s.watermark}", True, kind="tomb_past")
                continue
            seen.setdefault(row, []).append(seq)
            s.tombstoned[row] = True
        for row, seqs in seen.items():
            if len(seqs) > 1:
                self._add("tombstones", f"row {row} is tombstoned {len(seqs)} times "
                          f"(log entries {seqs})", True, kind="tomb_dup")
        edits = self._log("edits", "edits", "edit")
        if self.dbs.get("edits") is not None and len(edits) != s.edit_seq:
            self._add("edits", f"the state counts {s.edit_seq} edits, the edit log holds "
                      f"{len(edits)}", True)
        for seq, row in edits:
            if row >= s.watermark:
                self._add("edits", f"edit {seq} names row {row}, past the watermark "
                          f"W = {s.watermark}", True, kind="edit_past")
        s.edit_rows = edits

    def _log(self, table: str, component: str, what: str) -> list[tuple[int, int]]:
        """(sequence, row) entries of a log; malformed ones and gaps reported."""
        out = []
        for key, value in self._prefixed(table):
            if len(key) != 12 or len(value) != 8:
                self._add(component, f"{what} log entry {key.hex()} is malformed "
                          f"({len(value)}-byte value)", False, kind=f"{table}_bad")
                continue
            out.append((keys.key_row(key), keys.unpack_u64(value)))
        for expect, (seq, _) in enumerate(out):
            if seq != expect:
                self._add(component, f"the {what} log skips from entry {expect - 1} to "
                          f"{seq} (entries must be numbered 0, 1, 2, ...)", True)
                break
        return out

    # -- rows ------------------------------------------------------------------------------

    def read_rows(self, consumers: Sequence[Any], bar: Any) -> None:
        """One pass over the row records; consumers get the live ones."""
        s, prefix = self.scan, self.prefix
        w, tombstoned = s.watermark, s.tombstoned
        rec_rows: list[int] = []
        rec_keys: list[bytes] = []
        int_ids = np.full(w, ID_NOT_INT, dtype=np.int64)
        unpack_row = struct.Struct(">Q").unpack_from
        reported = 0  # progress: one per record below W read so far; [0, W) once done
        for key, value in self._prefixed("rows"):
            if len(rec_rows) - reported >= ROW_BATCH:
                bar.update(len(rec_rows) - reported)
                reported = len(rec_rows)
            if len(key) != 12:
                self._add("rows", f"rows key {key.hex()} is malformed", False, kind="rows_key")
                continue
            row = unpack_row(key, 4)[0]
            if row >= w:
                self._add("rows", f"row {row} holds a record but lies past the watermark "
                          f"W = {w}", False, kind="rows_past")
                continue
            try:
                ext_id, meta, doc = decode_record(value)
            except DECODE_ERRORS as e:  # corrupt msgpack / zstd / header
                self.lost_or_unreadable.add(row)
                self._add("rows", f"the record of row {row} cannot be read "
                          f"({type(e).__name__}: {e})", False, kind="rows_bad")
                continue
            rec_rows.append(row)
            rec_keys.append(keys.id_key(prefix, ext_id))
            if tombstoned[row]:
                self.lost_or_unreadable.add(row)
                self._add("rows", f"row {row} is tombstoned but still holds the record of id "
                          f"{ext_id!r}", False, kind="rows_tombstoned")
                continue
            if type(ext_id) is int:
                int_ids[row] = ext_id
            for consumer in consumers:
                consumer.add(row, meta, doc)
        bar.update(w - reported)
        s.rec_rows = np.array(rec_rows, dtype=np.int64)
        s.rec_keys = rec_keys
        has_record = np.zeros(w, dtype=bool)
        has_record[s.rec_rows] = True
        s.live = has_record & ~tombstoned
        s.int_ids = np.where(s.live, int_ids, ID_NOT_INT)
        unreadable = np.zeros(w, dtype=bool)
        unreadable[list(self.lost_or_unreadable)] = True
        lost = np.flatnonzero(~has_record & ~tombstoned & ~unreadable)
        for row in lost.tolist():
            self.lost_or_unreadable.add(row)
            self._add("rows", f"row {row} holds no record and is not tombstoned: its record "
                      f"is lost (the vector remains)", False, kind="rows_lost")

    # -- ids -------------------------------------------------------------------------------

    def judge_ids(self) -> None:
        """Every id -> row points at the live row holding that id; every live row is
        pointed at by its id (one row per id: a second live row holding it is reported)."""
        s = self.scan
        key_at = dict(zip(s.rec_rows.tolist(), s.rec_keys))
        holder: dict[bytes, int] = {}
        losers = set()
        for row, key in zip(s.rec_rows.tolist(), s.rec_keys):
            if not s.live[row]:
                continue
            earlier = holder.get(key)
            if earlier is not None:
                losers.add(earlier)
                self._add("ids", f"id {id_text(key)} is held by live rows {earlier} and {row} "
                          f"(repair keeps row {row}, the later one, and tombstones row "
                          f"{earlier})", True, kind="ids_dup")
            holder[key] = row
        table: dict[bytes, int] = {}
        for key, value in self._prefixed("ids"):
            if len(value) != 8:
                self._add("ids", f"the ids entry of id {id_text(key)} is malformed "
                          f"({len(value)}-byte value)", True, kind="ids_bad")
                continue
            row = keys.unpack_u64(value)
            table[key] = row
            if row >= s.watermark:
                self._add("ids", f"id {id_text(key)} maps to row {row}, past the watermark "
                          f"W = {s.watermark}", True, kind="ids_past")
            elif key_at.get(row) == key or row in self.lost_or_unreadable:
                continue  # right, or next to damage reported (and kept) as it is
            elif s.tombstoned[row]:
                self._add("ids", f"id {id_text(key)} maps to row {row}, which is tombstoned",
                          True, kind="ids_tombstoned")
            else:
                self._add("ids", f"id {id_text(key)} maps to row {row}, which holds id "
                          f"{id_text(key_at[row])}", True, kind="ids_wrong")
        for key, row in holder.items():
            mapped = table.get(key)
            if mapped is None:
                self._add("ids", f"row {row} holds id {id_text(key)}, which the ids table "
                          f"lacks", True, kind="ids_missing")
            elif mapped != row and mapped not in losers:
                self._add("ids", f"row {row} holds id {id_text(key)}, which the ids table "
                          f"maps to row {mapped}", True, kind="ids_elsewhere")
