"""The ``vecdb`` commands about a database and its collections as wholes: ``info``, ``ls``,
``create``, ``vacuum`` and ``check``.

Each ``run_*`` takes the parsed arguments and returns the exit code; errors propagate as
exceptions for app.py to report. Invariants:
 1. ``info``, ``ls`` and ``check`` (without ``--repair``) open the database read-only;
    ``create``, ``vacuum`` and ``check --repair`` open it writable (session.py).
 2. ``vacuum`` resolves every named collection before vacuuming any, so an unknown name
    changes nothing.
 3. ``check`` exits with 1 when problems remain (not repaired, with ``--repair``).

    >>> from vecdb.cli import main
    >>> main(["ls", "./my.vdb", "--json"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
from typing import Any

from . import session
from .output import emit, emit_json, fmt_bytes, pairs, table


def run_info(args: argparse.Namespace) -> int:
    """Path, format version, size on disk and a description of every collection."""
    with session.open_read(args.path) as db:
        cols = [db.get_collection(name) for name in db.list_collections()]
        described = [session.describe(col) for col in cols]
        doc = {"path": db.path, "format_version": session.format_version(db),
               "disk_bytes": session.disk_bytes(db.path), "collections": described}
        if args.json:
            emit_json(doc)
            return 0
        emit(pairs([("path", doc["path"]),
                    ("format version", str(doc["format_version"])),
                    ("size on disk", fmt_bytes(doc["disk_bytes"])),
                    ("collections", str(len(described)))]))
        if cols:
            rows = []
            for col, d in zip(cols, described):
                lab = session.labels(col)
                rows.append([d["name"], d["count"], d["tombstones"], d["dim"], d["metric"],
                             lab["index"], lab["quantization"], lab["text_index"],
                             fmt_bytes(d["disk_bytes"])])
            emit("")
            emit(table(["name", "count", "deleted", "dim", "metric", "index", "quantization",
                        "text index", "disk"], rows))
    return 0


def run_ls(args: argparse.Namespace) -> int:
    """One row per collection: name, count, dim, metric, index."""
    with session.open_read(args.path) as db:
        cols = [db.get_collection(name) for name in db.list_collections()]
        items = [{"name": c.name, "count": c.count(), "dim": c.dim, "metric": c.metric,
                  "index": c.index.to_dict()["type"]} for c in cols]
        if args.json:
            emit_json(items)
        elif items:
            emit(table(["name", "count", "dim", "metric", "index"],
                       [[i["name"], i["count"], i["dim"], i["metric"],
                         session.labels(c)["index"]] for i, c in zip(items, cols)]))
        else:
            emit(f"no collections in {db.path}")
    return 0


def run_create(args: argparse.Namespace) -> int:
    """Creates a collection (CollectionExistsError when the name is taken)."""
    from .inputs import (
        index_config,
        precheck_collection,
        quantization_config,
        text_index_config,
    )

    index = index_config(args)
    quant = quantization_config(args.quantization)
    text = text_index_config(args)
    precheck_collection(args.name, args.dim, index, quant)
    with session.open_write(args, args.path, create=True) as db:
        col = db.create_collection(args.name, dim=args.dim, metric=args.metric or "cosine",
                                   index=index, quantization=quant, text_index=text)
        d = session.describe(col, with_disk=False)
        if args.json:
            emit_json({"created": True, "path": db.path, **d})
        else:
            lab = session.labels(col)
            emit(f"created collection {col.name!r} in {db.path}: dim {col.dim}, "
                 f"{col.metric}, {lab['index']}, quantization {lab['quantization']}, "
                 f"text index {lab['text_index']}")
    return 0


def run_vacuum(args: argparse.Namespace) -> int:
    """Vacuums the named collections (all by default) and reports what each vacuum did."""
    with session.open_write(args, args.path) as db:
        names = args.names or db.list_collections()
        cols = [db.get_collection(name) for name in dict.fromkeys(names)]  # invariant 2
        done: list[dict[str, Any]] = []
        progress = session.progress(args)
        for col in cols:
            result = col.vacuum(progress=progress)
            done.append({"name": col.name, **result})
        if args.json:
            emit_json(done)
        elif done:
            emit(table(["name", "rows before", "rows after", "removed", "generation",
                        "seconds"],
                       [[d["name"], d["rows_before"], d["rows_after"], d["removed"],
                         d["generation"], round(d["seconds"], 3)] for d in done]))
        else:
            emit(f"no collections in {db.path}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Checks the database (and repairs what is derived with --repair); exits with 1 when
    problems remain (the report's ``ok``: every problem found was repaired)."""
    progress = session.progress(args)
    if args.repair:
        with session.open_write(args, args.path) as db:
            report = db.check(repair=True, progress=progress)
    else:
        with session.open_read(args.path) as db:
            report = db.check(progress=progress)
    if args.json:
        emit_json(report.to_dict())
    else:
        emit(str(report))
    return 0 if report.ok else 1
