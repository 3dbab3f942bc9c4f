"""IVF-PQ index of one collection: coarse k-means lists of PQ-coded residuals, for
collections that must not hold a graph in RAM (m bytes of code, 4 of row id and, under L2
and cosine, 4 of norm per vector).

Life of the index of one collection generation:
  - untrained: fewer than ``config.rows_to_train`` rows were committed; queries scan
    exactly (the planner sees ``ready() == False``);
  - training: nlist centroids by k-means on a sample of at most TRAIN_SAMPLE rows, then a PQ
    (m sub-quantizers, 256 centroids each) of the sample's residuals (row - its centroid);
    every row so far is assigned and encoded; a checkpoint is written;
  - trained: each extend assigns and encodes the new rows into their lists.
A query probes the nprobe lists closest to it (csrc/ivf.c), keeps the k * rescore best rows
by ADC distance, and rescores them exactly from the float32 rows on disk.

Under L2 (and cosine, whose unit rows are searched with L2 codes, see codes.code_metric)
each list also keeps the norm term |x^|^2 - |c|^2 of every decoded row x^, so a query needs
one ADC table instead of one per probed list (csrc/vecdb.h, vdb_ivf_lists): 4 more bytes per
vector.

The checkpoint ``ivfpq.vdbq`` (storage/arrayfile.py) holds centroids, codebooks, list
sizes and the lists' rows, codes and norms (concatenated in list order), and the training
statistics; like every derived file it is rebuilt (trained again) when missing or damaged.

Invariants:
 1. Searches work on a published snapshot (``_Lists.snapshot``: an ``_native.IvfLists``
    and the rows it covers), replaced whole at the end of each extend; a writer fills only
    list capacity past the snapshot's sizes, or new arrays, so a snapshot never changes.
 2. A retrain builds new lists and swaps them in with one assignment.
 3. Writers (extend, train, checkpoint) hold ``_lock``; searches take no lock.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _native
from ..config import IVFPQ, PQ_MIN_TRAIN
from ..errors import VecDBError
from ..storage import arrayfile
from .codes import (TRAIN_ITERS, ErrorStats, code_metric, gather, read_checkpoint,
                    row_ranges, sample_rows, warn_unusable)

IVF_FILE = "ivfpq.vdbq"
MAGIC = b"VDBIVFPQ"
VERSION = 1
COARSE_ITERS = 10  # k-means iterations of the coarse centroids (the PQ takes TRAIN_ITERS)
CHECKPOINT_MIN_TAIL = 20_000
CHECKPOINT_TAIL_SHARE = 0.125

Views = Callable[[int], Sequence[np.ndarray]]


@dataclass
class _Lists:
    centroids: np.ndarray                  # float32 [nlist, dim]
    quantizer: _native.Quantizer           # PQ of the residuals
    rows: List[np.ndarray]                 # per list: uint32 [capacity]
    codes: List[np.ndarray]                # per list: uint8 [capacity, m]
    norms: Optional[List[np.ndarray]]      # L2: per list float32 [capacity], norm terms
    sizes: np.ndarray                      # int64 [nlist]
    covered: int = 0                       # rows [0, covered) are in the lists
    errors: ErrorStats = field(default_factory=ErrorStats)
    trained_rows: int = 0
    snapshot: Optional[Tuple[_native.IvfLists, int]] = None

    @property
    def nlist(self) -> int:
        return len(self.centroids)

    def publish(self) -> None:
        self.snapshot = (_native.IvfLists(self.centroids, self.rows, self.codes, self.sizes,
                                          self.quantizer.code_size, norms=self.norms),
                         self.covered)


def _grown(a: np.ndarray, size: int, capacity: int) -> np.ndarray:
    """A new array of capacity rows holding a's first size rows."""
    out = np.empty((capacity,) + a.shape[1:], dtype=a.dtype)
    out[:size] = a[:size]
    return out


class IvfPqIndex:
    """The IVF-PQ index of one collection (see the module docstring)."""

    kind = "ivfpq"

    def __init__(self, directory: str, dim: int, kernel_metric: str, config: IVFPQ,
                 shift: int, writable: bool, label: str, fsync: bool = True,
                 unit_rows: bool = False) -> None:
        self.path = os.path.join(directory, IVF_FILE)
        self.dim = dim
        self.kernel_metric = kernel_metric  # of the exact rescoring
        self.code_metric = code_metric(config, kernel_metric, unit_rows)  # of probe and scan
        self.config = config
        self.shift = shift
        self.writable = writable
        self.fsync = fsync
        self.label = label
        self._lock = threading.RLock()
        self._lists: Optional[_Lists] = None
        self._saved = -1
        self.trainings = 0

    # -- state -------------------------------------------------------------------------------

    @property
    def trained(self) -> bool:
        return self._lists is not None

    @property
    def nlist(self) -> int:
        """Lists of the trained index (the config's nlist, or fewer when the training
        sample was smaller)."""
        lists = self._lists
        return lists.nlist if lists is not None else self.config.nlist

    # -- open / train / extend ----------------------------------------------------------------

    def open(self, views: Views, n_rows: int) -> None:
        """Loads the checkpoint (or trains when due) and takes in rows up to n_rows."""
        with self._lock:
            warn_unusable("IVF-PQ", self.path, self.label, self._load(n_rows), n_rows,
                          self.writable, n_rows >= self.config.rows_to_train, stacklevel=4)
            self._extend(views, n_rows)

    def build(self, views: Views, n_rows: int,
              previous: Optional["IvfPqIndex"] = None) -> None:
        """A fresh index over rows [0, n_rows), checkpointed: with previous's centroids and
        codebooks when it is trained (vacuum: same data, fewer rows), else trained when due."""
        with self._lock:
            self._lists, self._saved = None, -1
            old = previous._lists if previous is not None else None
            if old is None or previous.code_metric != self.code_metric:
                self._extend(views, n_rows)
                return
            lists = self._empty_lists(old.centroids, old.quantizer,
                                      old.errors.restarted(), old.trained_rows)
            self._add(lists, views(n_rows), 0, n_rows)
            lists.publish()
            self._lists = lists
            if self.writable:
                self._checkpoint()

    def _load(self, n_rows: int) -> Optional[str]:
        reason, meta, a = read_checkpoint(self.path, MAGIC, VERSION,
                                          n_rows >= self.config.rows_to_train)
        if meta is None:
            return reason
        try:
            expect = (self.code_metric, self.dim, self.config.m)
            got = (meta["metric"], meta["dim"], meta["m"])
            if got != expect:
                return f"it was made for (metric, dim, m) = {got}, not {expect}"
            covered = int(meta["rows"])
            if covered > n_rows:
                return f"it holds {covered} rows but only {n_rows} are committed"
            centroids = np.array(a["centroids"])
            quantizer = _native.Quantizer("pq", self.code_metric, self.dim,
                                          np.array(a["params"]), m=self.config.m)
            sizes = np.array(a["sizes"], dtype=np.int64)
            ends = np.cumsum(sizes)
            with_norms = self.code_metric == "l2"
            if len(sizes) != len(centroids) or (len(ends) and ends[-1] != covered) or \
                    a["rows"].shape != (covered,) or \
                    a["codes"].shape != (covered, quantizer.code_size) or \
                    (covered and int(a["rows"].max()) >= covered) or \
                    (with_norms and a["norms"].shape != (covered,)):
                return "its lists do not add up"
            starts = ends - sizes

            def split(name: str) -> List[np.ndarray]:
                return [a[name][s:e] for s, e in zip(starts, ends)]

            lists = _Lists(centroids, quantizer, split("rows"), split("codes"),
                           split("norms") if with_norms else None, sizes, covered,
                           ErrorStats.from_meta(meta), int(meta["trained_rows"]))
        except (KeyError, TypeError, ValueError, VecDBError) as e:
            return f"its directory is malformed ({e})"
        lists.publish()
        self._lists, self._saved = lists, covered
        return None

    def extend(self, views: Views, n_rows: int) -> None:
        """Takes in rows [covered, n_rows) (training first when due); searches see them on
        return."""
        lists = self._lists
        if (lists is not None and lists.covered >= n_rows) or \
                (lists is None and n_rows < self.config.rows_to_train):
            return
        with self._lock:
            self._extend(views, n_rows)

    def _extend(self, views: Views, n_rows: int) -> None:
        lists = self._lists
        if lists is None:
            if n_rows < self.config.rows_to_train:
                return
            # a reader first looks for the lists the writer trained meanwhile
            if self.writable or self._load(n_rows) is not None:
                self._train(views, n_rows)
                return
            lists = self._lists
        if lists.covered < n_rows:
            self._add(lists, views(n_rows), lists.covered, n_rows)
            lists.publish()
            tail = lists.covered - max(self._saved, 0)
            if self.writable and tail >= max(CHECKPOINT_MIN_TAIL,
                                             CHECKPOINT_TAIL_SHARE * lists.covered):
                self._checkpoint()

    def _train(self, views: Views, n_rows: int) -> Dict[str, Any]:
        segments = views(n_rows)
        sample = gather(segments, self.shift, sample_rows(n_rows))
        nlist = min(self.config.nlist, len(sample))
        centroids, _ = _native.kmeans(sample, nlist, iters=COARSE_ITERS)
        assign, _ = _native.kmeans_assign(centroids, sample)
        residuals = sample - centroids[assign]
        params = _native.pq_train(residuals, self.config.m, iters=TRAIN_ITERS)
        quantizer = _native.Quantizer("pq", self.code_metric, self.dim, params,
                                      m=self.config.m)
        _, err = quantizer.encode(residuals, errors=True)
        lists = self._empty_lists(centroids, quantizer,
                                  ErrorStats(float(err.mean(dtype=np.float64))), n_rows)
        self._add(lists, segments, 0, n_rows, measure=False)
        lists.publish()
        self._lists, self._saved = lists, -1
        self.trainings += 1
        if self.writable:
            self._checkpoint()
        return {"trained": True, "rows": n_rows, "sample": len(sample), "nlist": nlist,
                "train_error": lists.errors.trained}

    def _empty_lists(self, centroids: np.ndarray, quantizer: _native.Quantizer,
                     errors: ErrorStats, trained_rows: int) -> _Lists:
        nlist = len(centroids)
        return _Lists(centroids, quantizer,
                      [np.empty(0, dtype=np.uint32) for _ in range(nlist)],
                      [np.empty((0, quantizer.code_size), dtype=np.uint8)
                       for _ in range(nlist)],
                      [np.empty(0, dtype=np.float32) for _ in range(nlist)]
                      if self.code_metric == "l2" else None,
                      np.zeros(nlist, dtype=np.int64), errors=errors,
                      trained_rows=trained_rows)

    def _add(self, lists: _Lists, segments: Sequence[np.ndarray], start: int, stop: int,
             measure: bool = True) -> None:
        """Assigns and encodes rows [start, stop) into the lists (invariant 1)."""
        mask = (1 << self.shift) - 1
        for lo, hi in row_ranges(start, stop, self.shift, 16):
            x = segments[lo >> self.shift][lo & mask:(lo & mask) + hi - lo]
            assign, _ = _native.kmeans_assign(lists.centroids, x)
            residuals = x - lists.centroids[assign]
            codes, err = lists.quantizer.encode(residuals, errors=True)
            if measure:
                lists.errors.add(err)
            norms = None
            if lists.norms is not None:  # 2 c.r^ + |r^|^2 (csrc/vecdb.h, vdb_ivf_lists)
                r_hat = lists.quantizer.decode(codes)
                norms = np.einsum("ij,ij->i", r_hat, 2 * lists.centroids[assign] + r_hat)
            order = np.argsort(assign, kind="stable")
            present, first = np.unique(assign[order], return_index=True)
            bounds = np.append(first, len(order))
            for j, li in enumerate(present.tolist()):
                pick = order[bounds[j]:bounds[j + 1]]
                self._append(lists, li, (pick + lo).astype(np.uint32), codes[pick],
                             None if norms is None else norms[pick])
            lists.covered = hi

    @staticmethod
    def _append(lists: _Lists, li: int, rows: np.ndarray, codes: np.ndarray,
                norms: Optional[np.ndarray]) -> None:
        size, n = int(lists.sizes[li]), len(rows)
        if size + n > len(lists.rows[li]):  # (a loaded list has no spare room: always here)
            cap = max(16, 2 * (size + n))
            lists.rows[li] = _grown(lists.rows[li], size, cap)
            lists.codes[li] = _grown(lists.codes[li], size, cap)
            if norms is not None:
                lists.norms[li] = _grown(lists.norms[li], size, cap)
        lists.rows[li][size:size + n] = rows
        lists.codes[li][size:size + n] = codes
        if norms is not None:
            lists.norms[li][size:size + n] = norms
        lists.sizes[li] = size + n

    # -- search ------------------------------------------------------------------------------

    def search(self, views: Views, n_rows: int, queries: np.ndarray, k: int, *,
               nprobe: Optional[int] = None, rescore: Optional[int] = None,
               deny: Optional[np.ndarray], allow: Optional[np.ndarray] = None,
               eligible: Optional[int] = None, n_threads: int = 0,
               stats: Optional[dict] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(rows int64 [nq, k], exact kernel distances float32 [nq, k]) over rows
        [0, n_rows): the k * rescore best by ADC in the nprobe closest lists, rescored. Under
        a filter (eligible rows given), nprobe widens so that the probed lists hold about
        k * rescore eligible rows. The caller checked ready()."""
        lists = self._lists
        if lists.snapshot[1] < n_rows:
            self.extend(views, n_rows)
            lists = self._lists
        snapshot, covered = lists.snapshot
        n_rows = min(n_rows, covered)
        nprobe = nprobe or self.config.probes(lists.nlist)
        n_cand = max(k, k * (rescore or self.config.rescore))
        if eligible is not None and eligible < n_rows:
            wanted = math.ceil(n_cand * lists.nlist / max(eligible, 1))
            nprobe = max(nprobe, wanted)
        nprobe = min(nprobe, lists.nlist)
        cand, _ = _native.ivfpq_search(lists.quantizer, snapshot, n_rows, queries, n_cand,
                                       nprobe, allow=allow, deny=deny, n_threads=n_threads,
                                       stats=stats)
        if stats is not None:
            stats["rescored"] = stats.get("rescored", 0) + int((cand >= 0).sum())
            stats["nprobe"] = nprobe
        return _native.rescore(views(n_rows), self.shift, n_rows, queries, cand, k,
                               self.kernel_metric, n_threads=n_threads)

    def optimize(self, views: Views, n_rows: int, force: bool = False) -> Dict[str, Any]:
        """Trains now if untrained (with at least 256 rows), or again if the rows added since
        training drifted far from the centroids and codebooks (or force)."""
        with self._lock:
            lists = self._lists
            if n_rows < PQ_MIN_TRAIN:
                return {"trained": False, "reason": f"training needs at least {PQ_MIN_TRAIN} "
                                                    f"rows, {n_rows} stored"}
            if lists is not None and not force and not lists.errors.drifted():
                self._extend(views, n_rows)
                return {"trained": False, "reason": "the lists fit the data (no drift)"}
            return self._train(views, n_rows)

    # -- checkpoint / stats ----------------------------------------------------------------------

    def checkpoint(self) -> bool:
        with self._lock:
            return self._checkpoint()

    def _checkpoint(self) -> bool:
        lists = self._lists
        if not self.writable or lists is None or lists.covered == self._saved:
            return False
        sizes = lists.sizes.copy()
        meta = {"metric": self.code_metric, "dim": self.dim, "m": self.config.m,
                "rows": lists.covered, "trained_rows": lists.trained_rows,
                **lists.errors.to_meta()}
        total = int(sizes.sum())
        rows = np.concatenate([r[:s] for r, s in zip(lists.rows, sizes)]) if total else \
            np.empty(0, dtype=np.uint32)
        codes = np.concatenate([c[:s] for c, s in zip(lists.codes, sizes)]) if total else \
            np.empty((0, lists.quantizer.code_size), dtype=np.uint8)
        arrays = {"centroids": lists.centroids, "params": lists.quantizer.params,
                  "sizes": sizes, "rows": rows, "codes": codes}
        if lists.norms is not None:
            arrays["norms"] = np.concatenate([a[:s] for a, s in zip(lists.norms, sizes)]) \
                if total else np.empty(0, dtype=np.float32)
        arrayfile.save(self.path, MAGIC, VERSION, meta, arrays, fsync=self.fsync)
        self._saved = lists.covered
        return True

    def stats(self) -> Dict[str, Any]:
        lists = self._lists
        out: Dict[str, Any] = {**self.config.to_dict(), "trained": lists is not None,
                               "rows_to_train": self.config.rows_to_train,
                               "trainings": self.trainings,
                               "code_bytes_per_vector": self.config.m +
                               (4 if self.code_metric == "l2" else 0),
                               "graph_bytes_per_vector": 0, "id_bytes_per_vector": 4}
        if lists is not None:
            sizes = lists.sizes
            out.update(lists=lists.nlist, covered_rows=lists.covered,
                       trained_rows=lists.trained_rows, train_error=lists.errors.trained,
                       recent_error=lists.errors.recent,
                       largest_list=int(sizes.max()) if len(sizes) else 0,
                       empty_lists=int((sizes == 0).sum()))
        else:
            out["code_bytes_per_vector"] = 4 * self.dim  # queries scan float32 until trained
        return out

    def close(self) -> None:
        with self._lock:
            self._lists = None
