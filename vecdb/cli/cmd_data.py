"""The ``vecdb`` commands that move items in and out of a collection: ``import``, ``export``
and ``query``.

Each ``run_*`` takes the parsed arguments and returns the exit code; errors propagate as
exceptions for app.py to report. Invariants:
 1. ``export`` and ``query`` open the database read-only; ``import`` opens it writable
    (creating the database and the collection when missing).
 2. Every flag is checked (JSON parsed, files found, options matched against an existing
    collection) before the database is opened for writing, so a bad invocation changes
    nothing, not even by creating an empty database directory.
 3. ``query --json`` writes {"collection", "k", "results": [[hit, ...] per query vector or
    text]}; a hit holds rank, id, distance, score and the included fields.

    >>> from vecdb.cli import main
    >>> main(["query", "my.vdb", "docs", "--text", "annual report", "-k", "3"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from . import session
from .inputs import (
    UsageError,
    collection_options_given,
    fusion_config,
    ids_from_file,
    index_config,
    json_object_flag,
    precheck_collection,
    quantization_config,
    query_vectors,
    text_index_config,
)
from .output import emit, emit_json, fmt_number, pairs, shorten, table


def _check_input_file(flag: str, path: str) -> None:
    from ..errors import InvalidArgumentError
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"{flag}: no such file {path!r}")


def run_import(args: argparse.Namespace) -> int:
    """Loads FILE into collection NAME (created from the options or the file when missing)."""
    from ..errors import InvalidArgumentError

    _check_input_file("FILE", args.file)
    ids = ids_from_file(args.ids_file)
    mode = "upsert" if args.upsert else "add"
    index, quant = index_config(args), quantization_config(args.quantization)
    text = text_index_config(args)
    precheck_collection(args.name, args.dim, index, quant)
    progress = session.progress(args)
    t0 = time.perf_counter()
    with session.open_write(args, args.path, create=True, durability="normal") as db:
        created = args.name not in db.list_collections()
        if created:
            col = db.import_(args.name, args.file, format=args.format, dim=args.dim,
                             metric=args.metric, index=index, quantization=quant,
                             text_index=text, mode=mode, ids=ids,
                             batch_size=args.batch_size, progress=progress)
            written = col.count()
        else:
            col = db.get_collection(args.name)
            for flag, value, have in (("--dim", args.dim, col.dim),
                                      ("--metric", args.metric, col.metric)):
                if value is not None and value != have:
                    raise InvalidArgumentError(f"{flag}: collection {col.name!r} exists with "
                                               f"{flag[2:]} {have!r}, not {value!r}")
            extra = [f for f in collection_options_given(args) if f not in ("--dim", "--metric")]
            if extra:
                raise InvalidArgumentError(f"{extra[0]}: collection {col.name!r} exists; "
                                           f"options of a new collection do not apply to it")
            written = col.add_from(args.file, format=args.format, mode=mode, ids=ids,
                                   batch_size=args.batch_size, progress=progress)
        seconds = time.perf_counter() - t0
        doc = {"collection": col.name, "file": args.file, "created": created,
               "mode": mode, "written": written, "count": col.count(), "seconds": seconds}
    if args.json:
        emit_json(doc)
    else:
        rate = f" ({fmt_number(written / seconds, 0)} items/s)" if seconds > 0 and written else ""
        emit(f"{'created' if created else 'updated'} collection {doc['collection']!r}: "
             f"{'upserted' if args.upsert else 'imported'} {fmt_number(written)} items from "
             f"{args.file} in {seconds:.2f} s{rate}; it holds {fmt_number(doc['count'])} items")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Writes the items of collection NAME (or those matching the filters) to FILE."""
    where = json_object_flag("--where", args.where)
    where_document = json_object_flag("--where-document", args.where_document)
    t0 = time.perf_counter()
    with session.open_read(args.path) as db:
        col = db.get_collection(args.name)
        written = col.export(args.file, format=args.format, where=where,
                             where_document=where_document, batch_size=args.batch_size,
                             progress=session.progress(args))
    seconds = time.perf_counter() - t0
    if args.json:
        emit_json({"collection": args.name, "file": args.file, "written": written,
                   "seconds": seconds})
    else:
        emit(f"exported {fmt_number(written)} items of {args.name!r} to {args.file} "
             f"in {seconds:.2f} s")
    return 0


def _include(text: str) -> tuple:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def run_query(args: argparse.Namespace) -> int:
    """Nearest items to a vector (or several), keyword (--text) or hybrid search."""
    vectors = query_vectors(args.vector, args.vector_file)
    if vectors is None and args.text is None:
        raise UsageError("give --vector-file, --vector or --text")
    where = json_object_flag("--where", args.where)
    where_document = json_object_flag("--where-document", args.where_document)
    include = _include(args.include)
    fusion = fusion_config(args.fusion)
    with session.open_read(args.path) as db:
        col = db.get_collection(args.name)
        found = col.query(vectors, k=args.k, text=args.text, fusion=fusion, where=where,
                          where_document=where_document, include=include, ef=args.ef,
                          nprobe=args.nprobe, rescore=args.rescore, explain=args.explain)
    results = found if isinstance(found, list) else [found]
    hits = [[_hit_dict(rank, h, include) for rank, h in enumerate(r, 1)] for r in results]
    if args.json:
        doc: dict[str, Any] = {"collection": args.name, "k": args.k, "results": hits}
        if args.explain:
            doc["explain"] = [r.explain for r in results]
        emit_json(doc)
        return 0
    for i, (r, rows) in enumerate(zip(results, hits)):
        if len(results) > 1:
            emit(f"{'' if i == 0 else chr(10)}query {i + 1} of {len(results)}: "
                 f"{len(rows)} hits")
        _print_hits(rows, include)
        if args.explain and r.explain is not None:
            emit(pairs([(k, shorten(json.dumps(v, default=str), 100)
                         if isinstance(v, (dict, list)) else str(v))
                        for k, v in r.explain.items()], indent="  "))
    return 0


def _hit_dict(rank: int, hit: Any, include: tuple) -> dict[str, Any]:
    d: dict[str, Any] = {"rank": rank, "id": hit.id, "distance": float(hit.distance),
                         "score": float(hit.score)}
    if "metadata" in include:
        d["metadata"] = hit.metadata
    if "document" in include:
        d["document"] = hit.document
    if "vector" in include and hit.vector is not None:
        d["vector"] = [float(x) for x in hit.vector]
    if hit.sides is not None:
        d["sides"] = hit.sides
    return d


def _sides_label(sides: dict[str, dict[str, float]]) -> str:
    return " ".join(f"{side[0]}#{info['rank']}" for side, info in sorted(sides.items()))


def _print_hits(rows: list[dict[str, Any]], include: tuple) -> None:
    if not rows:
        emit("no hits")
        return
    headers = ["#", "id", "distance", "score"]
    hybrid = any("sides" in r for r in rows)
    if hybrid:
        headers.append("found by")
    headers += [f for f in ("metadata", "document", "vector") if f in include]
    out = []
    for r in rows:
        line: list[Any] = [r["rank"], str(r["id"]), f"{r['distance']:.4f}",
                           f"{r['score']:.4f}"]
        if hybrid:
            line.append(_sides_label(r.get("sides") or {}))
        if "metadata" in include:
            line.append(shorten(json.dumps(r["metadata"], ensure_ascii=False)
                                if r["metadata"] else "", 40))
        if "document" in include:
            line.append(shorten(r["document"], 60))
        if "vector" in include:
            line.append(shorten(" ".join(f"{x:.3f}" for x in r.get("vector", [])), 40))
        out.append(line)
    emit(table(headers, out))
