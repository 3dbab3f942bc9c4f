"""The ``vecdb`` commands that act on whole installations and archives: ``backup``,
``restore``, ``demo`` and ``bench``.

Each ``run_*`` takes the parsed arguments and returns the exit code; errors propagate as
exceptions for app.py to report. Invariants:
 1. ``backup`` opens the database read-only (it works while an application writes);
    ``restore`` writes only the new directory the library creates.
 2. ``--json`` writes the archive's manifest (backup, restore), the demo's log lines
    (demo) or the figures (bench) as the one JSON document on stdout.

    >>> from vecdb.cli import main
    >>> main(["bench", "--n", "2000", "--dim", "16"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import io
import os
import time
from typing import Any

from . import session
from .output import emit, emit_json, fmt_bytes, fmt_number, pairs, table


def _summary(args: argparse.Namespace, manifest: dict[str, Any], seconds: float,
             what: str) -> int:
    """Prints the manifest (--json), or what was done (``what`` with ``{n}`` for "3
    collections") and a table of the collections with their rows."""
    if args.json:
        emit_json(manifest)
        return 0
    cols = manifest.get("collections") or []
    n = f"{len(cols)} collection{'s' * (len(cols) != 1)}"
    emit(f"{what.replace('{n}', n)} in {seconds:.2f} s")  # paths may hold braces
    if cols:
        emit(table(["name", "rows", "live"],
                   [[c.get("name", "?"), c.get("rows"), c.get("live")] for c in cols]))
    return 0


def run_backup(args: argparse.Namespace) -> int:
    """Writes a consistent snapshot of DIR to ARCHIVE."""
    t0 = time.perf_counter()
    with session.open_read(args.path) as db:
        manifest = db.backup(args.archive, level=args.level, progress=session.progress(args))
        path = db.path
    size = fmt_bytes(manifest["archive_bytes"])
    return _summary(args, manifest, time.perf_counter() - t0,
                    f"backed up {{n}} of {path} to {args.archive} ({size})")


def run_restore(args: argparse.Namespace) -> int:
    """Restores ARCHIVE into the new directory DIR."""
    from .. import restore

    t0 = time.perf_counter()
    manifest = restore(args.archive, args.path, progress=session.progress(args))
    return _summary(args, manifest, time.perf_counter() - t0,
                    f"restored {{n}} from {args.archive} into {os.path.abspath(args.path)}")


def run_demo(args: argparse.Namespace) -> int:
    """Builds the demo database at DIR and searches it (vecdb/demo.py)."""
    from ..demo import run

    if not args.json:
        run(args.path, n=args.n, dim=args.dim)
        return 0
    log = io.StringIO()
    run(args.path, n=args.n, dim=args.dim, out=log)
    emit_json({"path": os.path.abspath(args.path), "collection": "demo", "n": args.n,
               "dim": args.dim, "log": log.getvalue().splitlines()})
    return 0


def run_bench(args: argparse.Namespace) -> int:
    """The quick self-check of vecdb/bench.py."""
    from ..bench import run

    r = run(n=args.n, dim=args.dim, k=args.k, queries=args.queries, metric=args.metric,
            seed=args.seed, progress=session.progress(args))
    if args.json:
        emit_json(r)
        return 0
    emit(f"vecdb bench: {fmt_number(r['n'])} clustered vectors of dim {r['dim']}, "
         f"{r['metric']}, {session.index_label(r['index'])}; {fmt_number(r['queries'])} "
         f"queries, k={r['k']}, plan {r['plan']!r}")
    emit(pairs([
        ("add + index", (f"{fmt_number(r['add_rows_per_s'], 0)} rows/s "
                        f"({r['add_seconds']:.2f} s)")),
        ("query latency", f"p50 {r['query_p50_ms']:.3f} ms, p99 {r['query_p99_ms']:.3f} ms"),
        ("query throughput", (f"{fmt_number(r['query_qps'], 0)} queries/s one at a time, "
                             f"{fmt_number(r['batch_qps'], 0)} queries/s in one batch")),
        (f"recall@{r['k']}", f"{r['recall_at_k']:.4f} (vs exact numpy search)"),
        ("numpy brute force", (f"{fmt_number(r['numpy_qps'], 0)} queries/s (matrix products "
                              f"over blocks of queries)")),
        ("vecdb / numpy", f"{r['speedup_vs_numpy']:.1f}x the queries per second (batches)"),
    ]))
    return 0
