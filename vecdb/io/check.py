"""``db.check()``: the integrity check of a whole database, and its repair.

What is verified, per collection (each part in its own module):
  - catalog entry <-> state entry, and no keys or folders of collections that do not exist
    (check_lmdb.py, check_files.py);
  - the ids table, the row records, the tombstone and edit logs against each other
    (check_lmdb.py: every row below W is live xor tombstoned, T = the log's length);
  - vector segments: headers, rows [0, W) present, values finite; the id column equals the
    record ids (check_files.py);
  - graph, quantized codes and IVF-PQ checkpoints (check_indexes.py);
  - the filter-columns checkpoint against the records (check_filters.py);
  - BM25 postings and text statistics against the live documents (check_text.py).
``repair=True`` (check_repair.py) rebuilds what is derived, then checks again: the report
marks each problem repaired or not; damage to a source of truth (a lost record, a damaged
vector segment) is reported as not repairable and left as it is.

Invariants:
 1. ``repair=False`` writes nothing: LMDB is read in read transactions, files are opened
    read-only (it works on a read-only database). No collection handle is opened for the
    check (opening one would silently rebuild a damaged graph).
 2. A writable database is checked under its write lock (a consistent view of LMDB and the
    files; writers of this process wait); a read-only one is not (another process may write
    meanwhile: rows it commits during the check are not seen).
 3. repair=True needs a writable database (ReadOnlyError otherwise) and holds the write lock
    from the first check to the end of the second.

    >>> import tempfile, vecdb
    >>> with vecdb.open(tempfile.mkdtemp()) as db:
    ...     _ = db.create_collection("docs", dim=2)
    ...     db.check().ok
    True
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..database import COLLECTIONS_DIR
from ..errors import InvalidArgumentError, ReadOnlyError
from ..rowset import generation_dir
from ..storage.catalog import CollectionInfo
from ..storage.segments import IDS, VECTORS, SegmentStore
from .check_files import check_finite, check_folders, check_id_column, check_segments
from .check_filters import FiltersCheck
from .check_indexes import check_indexes
from .check_lmdb import CatalogView, CollectionScan, CollectionScanner, check_catalog
from .check_repair import (
    LMDB_COMPONENTS,
    delete_checkpoints,
    rebuild_lmdb,
    remove_paths,
    reopen,
    repair_catalog,
    rewrite_id_column,
)
from .check_report import CheckReport, CollectionSummary, Findings, Problem
from .check_text import TextCheck
from .progress import progress_bar

if TYPE_CHECKING:  # pragma: no cover
    from ..database import Database


@dataclass
class _Target:
    """One checked collection and what repair needs to know about it."""

    info: CollectionInfo
    state: tuple[int, int, int, int]
    gen_dir: str
    filters_existed: bool = False


@dataclass
class _Run:
    """The outcome of one check pass."""

    problems: list[Problem]
    summaries: list[CollectionSummary]
    catalog: CatalogView
    targets: list[_Target] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)


def check(db: Database, *, repair: bool = False, progress: Any = False) -> CheckReport:
    """Checks (and with repair=True repairs) the database; see the module docstring.

    >>> report = db.check(repair=True)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
    """
    if not isinstance(repair, bool):
        raise InvalidArgumentError(f"repair: expected True or False, got {repair!r}")
    bar_arg = _progress_arg(progress)
    db._check_open()
    t0 = time.perf_counter()
    if repair:
        if db.readonly:
            raise ReadOnlyError(f"repair: database {db.path!r} was opened with readonly=True; "
                                f"repair needs a writable database")
        with db._writing():
            first = _run(db, bar_arg, "check")
            if not any(p.repairable for p in first.problems):
                return _report(db, first, first.problems, True, t0)
            notes = _repair(db, first)
            second = _run(db, bar_arg, "re-check")
            return _report(db, second, _merge(first.problems, second.problems + notes),
                           True, t0)
    lock = contextlib.nullcontext() if db.readonly else db._writing()
    with lock:
        first = _run(db, bar_arg, "check")
    return _report(db, first, first.problems, False, t0)


def _progress_arg(progress: Any) -> Any:
    from .progress import check_progress
    return check_progress(progress)


def _report(db: Database, run: _Run, problems: list[Problem], repair: bool,
            t0: float) -> CheckReport:
    return CheckReport(db.path, problems, run.summaries, repair=repair,
                       seconds=time.perf_counter() - t0)


def _merge(first: list[Problem], second: list[Problem]) -> list[Problem]:
    """The first pass's problems, marked repaired when the second pass no longer finds them,
    then what only the second pass found."""
    left = {p.key for p in second}
    seen = {p.key for p in first}
    for p in first:
        p.repaired = p.repairable and p.key not in left
    return first + [p for p in second if p.key not in seen]


# -- one pass -------------------------------------------------------------------------------

def _run(db: Database, progress: Any, desc: str) -> _Run:
    env, findings = db._env, Findings()
    with env.read() as txn:
        view = check_catalog(txn, env.dbs, findings)
    run = _Run([], [], view)
    total = sum(state[0] for _, state in view.collections)
    with progress_bar(progress, total, f"vecdb {desc}", "rows") as bar:
        for info, state in view.collections:
            run.summaries.append(_check_collection(db, info, state, findings, bar, run))
    generations = {info.uuid: state[2] for info, state in view.collections}
    collections_dir = os.path.join(db.path, COLLECTIONS_DIR)
    run.strays, run.temps = check_folders(findings, db.path, collections_dir, view,
                                          generations)
    run.problems = findings.finish()
    return run


def _check_collection(db: Database, info: CollectionInfo, state: tuple[int, int, int, int],
                      findings: Findings, bar: Any, run: _Run) -> CollectionSummary:
    env = db._env
    w, t, gen, _ = state
    gen_dir = generation_dir(db._collection_dir(info), gen)
    rel_dir = os.path.relpath(gen_dir, db.path)
    summary = CollectionSummary(info.name, w, w - t, t, gen)
    filters = FiltersCheck(gen_dir, rel_dir, info.name, findings)
    run.targets.append(_Target(info, state, gen_dir, filters.exists))
    with env.read() as txn:
        scanner = CollectionScanner(txn, env.dbs, info, state, findings)
        scanner.read_logs()
        filters.prepare(scanner.scan)
        text = TextCheck(txn, env.dbs, info, w, findings)
        scanner.read_rows((text, filters), bar)
        scanner.judge_ids()
        text.compare(scanner.scan)
    scan = scanner.scan
    filters.compare(scan)
    if filters.exists:
        summary.files_checked.append(filters.rel)
    if not os.path.isdir(gen_dir):
        if w:
            findings.add(info.name, "files", f"{rel_dir}, the folder of generation {gen}, is "
                         f"missing: the vectors of rows 0..{w - 1} are lost", False)
        return summary
    _check_segment_files(findings, scan, gen_dir, rel_dir, summary.files_checked)
    check_indexes(findings, scan, gen_dir, rel_dir, summary.files_checked)
    return summary


def _check_segment_files(findings: Findings, scan: CollectionScan, gen_dir: str, rel_dir: str,
                         files: list[str]) -> None:
    uuid = bytes.fromhex(scan.info.uuid)
    vectors = check_segments(findings, scan, gen_dir, rel_dir, VECTORS, files)
    check_finite(findings, scan, vectors, rel_dir,
                 SegmentStore(gen_dir, scan.info.dim, uuid, False, VECTORS).shift)
    idcol = check_segments(findings, scan, gen_dir, rel_dir, IDS, files)
    check_id_column(findings, scan, idcol, rel_dir, SegmentStore(gen_dir, 1, uuid, False,
                                                                 IDS).shift)


# -- repair ---------------------------------------------------------------------------------

def _repair(db: Database, run: _Run) -> list[Problem]:
    """Repairs what the first pass found repairable; returns notes on what failed."""
    notes: list[Problem] = []
    fixable = [p for p in run.problems if p.repairable]
    if any(p.collection is None and p.component == "catalog" for p in fixable):
        repair_catalog(db, run.catalog)
    for target in run.targets:
        name = target.info.name
        components: set[str] = {p.component for p in fixable if p.collection == name}
        if not components:
            continue
        changes: dict[str, Any] = {}
        if components & LMDB_COMPONENTS:
            changes = db._env.write(
                lambda txn, info=target.info, wanted=components:
                rebuild_lmdb(txn, db._env.dbs, info, wanted), sync=True)
        if "id_column" in components:
            rewrite_id_column(db, target.info, target.state, target.gen_dir)
        drop = set(components)
        if "edit_log" in changes:  # the columns' edit count refers to the old log
            drop.add("filters")
        deleted = delete_checkpoints(target.gen_dir, drop)
        why = reopen(db, target.info, target.filters_existed and "filters" in deleted)
        if why is not None:
            notes.append(Problem(name, "files", f"the collection could not be reopened after "
                                 f"the repair ({why})", False))
    if any(p.collection is None and p.component == "files" for p in fixable):
        remove_paths(run.strays if run.catalog.intact else [])
        remove_paths(run.temps)
    return notes
