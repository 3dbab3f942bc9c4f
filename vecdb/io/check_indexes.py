"""The index part of the integrity check: the checkpoints ``hnsw.graph`` (csrc/hnsw_image.c
documents its layout), ``codes.vdbq`` (index/codes.py) and ``ivfpq.vdbq`` (index/ivfpq.py)
of a generation, read without building an index from them.

Each checkpoint must pass its header and body checksums, have been made for the collection
(dim, metric, m, quantizer kind), cover no more than the W committed rows, and be sane
inside: graph links name existing nodes, degrees stay within 2m (level 0) and m (upper
levels), upper links reach nodes of that level, the entry point is a node of the top level;
IVF-PQ lists hold every row below their watermark exactly once; a quantizer's parameters fit
the dimension. A missing checkpoint is not a problem: opening replays or rebuilds it.

Every finding here is repairable: the checkpoint is deleted and the next open rebuilds the
graph from the segments, or trains the quantizer / IVF-PQ lists again (k-means: the new
codes are as good, but not bit for bit the old ones).

Invariants:
 1. Files are mapped read-only; nothing here writes.
 2. The expectations mirror the loaders (HnswIndex._load, Codes._load, IvfPqIndex._load):
    what this check accepts, the loaders accept.

    >>> check_indexes(findings, scan, gen_dir, rel_dir, files)  # doctest: +SKIP
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Any

import numpy as np

from .. import _native
from ..config import HNSW, IVFPQ, PQ, index_from_dict, quantization_from_dict
from ..errors import VecDBError
from ..index import codes as codes_mod
from ..index import ivfpq as ivfpq_mod
from ..index.hnsw import GRAPH_FILE
from ..storage import arrayfile
from .check_lmdb import CollectionScan
from .check_report import Findings

MAX_LEVEL = 31          # csrc/hnsw_int.h HNSW_MAX_LEVEL
NODE_CHUNK = 1 << 16    # level-0 records checked at a time


def kernel_metric(metric: str) -> str:
    return "l2" if metric == "l2" else "ip"


def _map(path: str) -> mmap.mmap | None:
    """A read-only mapping of the file (None: there is none); ValueError when empty."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if os.fstat(fd).st_size == 0:
            raise ValueError("it is empty")
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)


def check_indexes(findings: Findings, scan: CollectionScan, gen_dir: str, rel_dir: str,
                  files: list[str]) -> None:
    """Checks the checkpoints the collection's index config calls for."""
    config = index_from_dict(scan.info.index)
    if isinstance(config, HNSW):
        _check_graph(findings, scan, config, gen_dir, rel_dir, files)
        quant = quantization_from_dict(scan.info.index)
        if quant is not None:
            _check_codes(findings, scan, quant, gen_dir, rel_dir, files)
    elif isinstance(config, IVFPQ):
        _check_ivfpq(findings, scan, config, gen_dir, rel_dir, files)


# -- graph ----------------------------------------------------------------------------------

def _check_graph(findings: Findings, scan: CollectionScan, config: HNSW, gen_dir: str,
                 rel_dir: str, files: list[str]) -> None:
    rel = f"{rel_dir}/{GRAPH_FILE}"

    def bad(message: str, kind: str = "graph") -> None:
        findings.add(scan.name, "graph", f"{rel}: {message}", True, kind=kind)

    try:
        buf = _map(os.path.join(gen_dir, GRAPH_FILE))
    except ValueError as e:
        files.append(rel)
        return bad(str(e))
    if buf is None:
        return
    files.append(rel)
    try:
        info = _native.hnsw_image_info(buf)
    except VecDBError as e:
        return bad(f"its header fails its checks ({e})")
    expect = (scan.info.dim, kernel_metric(scan.info.metric), config.m)
    found = (info["dim"], info["metric"], info["m"])
    if found != expect:
        return bad(f"it was built for (dim, metric, m) = {found}, the collection has "
                   f"{expect}")
    if info["n_nodes"] > scan.watermark:
        return bad(f"it holds {info['n_nodes']} nodes but only W = {scan.watermark} rows "
                   f"are committed")
    if not _native.hnsw_verify(buf):
        return bad(f"its body checksum does not match (bytes 160..{len(buf) - 1})")
    for message in _graph_structure(buf, info["n_nodes"], config.m):
        bad(message, kind="graph_structure")


def _graph_structure(buf: Any, n: int, m: int) -> list[str]:
    """Problems of the links of a checkpoint that passed its checksums."""
    out: list[str] = []
    entry, max_level = struct.unpack_from("<II", buf, 56)
    sections = [struct.unpack_from("<QQ", buf, 72 + 16 * s) for s in range(4)]
    if n == 0:
        return out
    w0, wu = 1 + 2 * m, 1 + m
    level0 = np.frombuffer(buf, dtype="<u4", count=n * w0, offset=sections[0][0]).reshape(n, w0)
    for lo in range(0, n, NODE_CHUNK):
        block = level0[lo:lo + NODE_CHUNK]
        counts = block[:, 0].astype(np.int64)
        for i in np.flatnonzero(counts > 2 * m)[:3].tolist():
            out.append(f"node {lo + i} has {counts[i]} level-0 links (at most {2 * m})")
        used = np.arange(2 * m) < np.minimum(counts, 2 * m)[:, None]
        wrong = used & (block[:, 1:] >= n)
        for i in np.flatnonzero(wrong.any(axis=1))[:3].tolist():
            j = int(block[i, 1:][wrong[i]][0])
            out.append(f"node {lo + i} links to node {j} at level 0 (the graph has {n} nodes)")
    levels = np.frombuffer(buf, dtype=np.uint8, count=n, offset=sections[1][0]).astype(np.int64)
    if entry >= n or levels[entry] != max_level:
        out.append(f"the entry point {entry} is not a node of the top level {max_level}")
    for i in np.flatnonzero(levels > max_level)[:3].tolist():
        out.append(f"node {i} has level {levels[i]}, above the top level {max_level}")
    upper_index = np.frombuffer(buf, dtype="<u8", count=n, offset=sections[2][0])
    upper = np.frombuffer(buf, dtype="<u4", count=sections[3][1] // 4, offset=sections[3][0])
    nodes = np.flatnonzero(levels > 0)
    lv = levels[nodes]
    ends = upper_index[nodes].astype(np.float64) + lv * wu
    outside = ends > len(upper)
    for i in nodes[outside][:3].tolist():
        out.append(f"node {i}'s upper-level links lie outside the upper section")
    nodes, lv = nodes[~outside], lv[~outside]
    if len(nodes):  # one record per (node, level 1..level): [count, ids 0..m-1]
        owner = np.repeat(nodes, lv)
        at_level = np.arange(len(owner)) - np.repeat(np.cumsum(lv) - lv, lv) + 1
        start = upper_index[owner].astype(np.int64) + (at_level - 1) * wu
        counts = upper[start].astype(np.int64)
        ids = upper[start[:, None] + 1 + np.arange(m)].astype(np.int64)
        used = np.arange(m) < np.minimum(counts, m)[:, None]
        for r in np.flatnonzero(counts > m)[:3].tolist():
            out.append(f"node {owner[r]} has {counts[r]} links at level {at_level[r]} "
                       f"(at most {m})")
        beyond = used & (ids >= n)
        low = used & ~beyond & (levels[np.minimum(ids, n - 1)] < at_level[:, None])
        for r in np.flatnonzero(beyond.any(axis=1))[:3].tolist():
            out.append(f"node {owner[r]} links to node {ids[r][beyond[r]][0]} at level "
                       f"{at_level[r]} (the graph has {n} nodes)")
        for r in np.flatnonzero(low.any(axis=1))[:3].tolist():
            j = int(ids[r][low[r]][0])
            out.append(f"node {owner[r]} links at level {at_level[r]} to node {j}, whose level "
                       f"is {levels[j]}")
    return out


# -- codes and IVF-PQ lists -----------------------------------------------------------------

def _load_arrays(findings: Findings, scan: CollectionScan, component: str, path: str,
                 rel: str, magic: bytes, version: int,
                 files: list[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    try:
        found = arrayfile.load(path, magic, version)
    except VecDBError as e:
        files.append(rel)
        findings.add(scan.name, component, f"{rel} cannot be used ({e})", True)
        return None
    if found is None:
        return None
    files.append(rel)
    return found[1], found[2]


def _check_codes(findings: Findings, scan: CollectionScan, quant: Any, gen_dir: str,
                 rel_dir: str, files: list[str]) -> None:
    rel = f"{rel_dir}/{codes_mod.CODES_FILE}"
    loaded = _load_arrays(findings, scan, "codes", os.path.join(gen_dir, codes_mod.CODES_FILE),
                          rel, codes_mod.MAGIC, codes_mod.VERSION, files)
    if loaded is None:
        return
    meta, arrays = loaded
    metric = codes_mod.code_metric(quant, kernel_metric(scan.info.metric),
                                   scan.info.metric == "cosine")
    m = quant.m if isinstance(quant, PQ) else 0
    try:
        expect = (quant.kind, metric, scan.info.dim, m)
        found = (meta["kind"], meta["metric"], meta["dim"], meta["m"])
        if found != expect:
            raise ValueError(f"it was made for (kind, metric, dim, m) = {found}, the "
                             f"collection has {expect}")
        rows = int(meta["rows"])
        if rows > scan.watermark:
            raise ValueError(f"it holds {rows} rows but only W = {scan.watermark} are committed")
        quantizer = _native.Quantizer(quant.kind, metric, scan.info.dim,
                                      np.array(arrays["params"]), m=m)
        for i in range((rows + codes_mod.CODE_MASK) >> codes_mod.CODE_SHIFT):
            part = arrays[f"codes.{i}"]
            want = (min(codes_mod.CODE_ROWS, rows - (i << codes_mod.CODE_SHIFT)),
                    quantizer.code_size)
            if part.shape != want:
                raise ValueError(f"its codes segment {i} has shape {part.shape}, expected "
                                 f"{want}")
        int(meta["trained_rows"])
        codes_mod.ErrorStats.from_meta(meta)
    except (KeyError, TypeError, ValueError, VecDBError) as e:
        findings.add(scan.name, "codes", f"{rel}: {e}", True)


def _check_ivfpq(findings: Findings, scan: CollectionScan, config: IVFPQ, gen_dir: str,
                 rel_dir: str, files: list[str]) -> None:
    rel = f"{rel_dir}/{ivfpq_mod.IVF_FILE}"
    loaded = _load_arrays(findings, scan, "ivfpq", os.path.join(gen_dir, ivfpq_mod.IVF_FILE),
                          rel, ivfpq_mod.MAGIC, ivfpq_mod.VERSION, files)
    if loaded is None:
        return
    meta, a = loaded
    metric = codes_mod.code_metric(config, kernel_metric(scan.info.metric),
                                   scan.info.metric == "cosine")
    try:
        expect = (metric, scan.info.dim, config.m)
        found = (meta["metric"], meta["dim"], meta["m"])
        if found != expect:
            raise ValueError(f"it was made for (metric, dim, m) = {found}, the collection "
                             f"has {expect}")
        covered = int(meta["rows"])
        if covered > scan.watermark:
            raise ValueError(f"it holds {covered} rows but only W = {scan.watermark} are "
                             f"committed")
        quantizer = _native.Quantizer("pq", metric, scan.info.dim, np.array(a["params"]),
                                      m=config.m)
        centroids, sizes, rows = a["centroids"], a["sizes"].astype(np.int64), a["rows"]
        if centroids.ndim != 2 or centroids.shape[1] != scan.info.dim or \
                len(sizes) != len(centroids):
            raise ValueError(f"its {len(sizes)} lists and centroids of shape "
                             f"{centroids.shape} do not fit dim {scan.info.dim}")
        if int(sizes.sum()) != covered or rows.shape != (covered,) or \
                a["codes"].shape != (covered, quantizer.code_size) or \
                (metric == "l2" and a["norms"].shape != (covered,)):
            raise ValueError(f"its lists do not add up to its {covered} rows")
        int(meta["trained_rows"])
        codes_mod.ErrorStats.from_meta(meta)
    except (KeyError, TypeError, ValueError, VecDBError) as e:
        findings.add(scan.name, "ivfpq", f"{rel}: {e}", True)
        return
    times = np.bincount(rows.astype(np.int64), minlength=covered)
    for row in np.flatnonzero(times[:covered] != 1)[:3].tolist():
        findings.add(scan.name, "ivfpq", f"{rel}: row {row} is in the lists {times[row]} "
                     f"times (every row below {covered} must be in exactly one)", True,
                     kind="ivfpq_rows")
    if len(times) > covered:
        findings.add(scan.name, "ivfpq", f"{rel}: the lists name rows past their watermark "
                     f"{covered} (row {int(rows.max())})", True, kind="ivfpq_rows")
