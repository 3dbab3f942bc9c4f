"""HNSW index of one collection: the C graph, its checkpoint file, replay and rebuild.

The graph's node i is row i of the collection's segments, so the graph covers a prefix of the
rows [0, nodes). The checkpoint ``hnsw.graph`` is the image written by the C core
(csrc/hnsw_image.c documents its layout: magic, format version, params, node count = the
graph's row watermark, header and body checksums). Under quantization (index/codes.py) the
graph is still built from the float32 rows, but searches traverse the SQ8 / PQ codes held in
RAM and rescore the best candidates from the float32 rows.

Invariants:
 1. The checkpoint is replaced atomically (temp file, fsync, rename, fsync of the folder); a
    crash leaves the old or the new one, never a torn one.
 2. Opening maps the checkpoint copy-on-write (nothing is read in) and replays only the rows
    past its node count. The body checksum is verified by a background thread on a separate
    read-only mapping of the same file; a failed check makes the next use rebuild the graph.
 3. A checkpoint that is missing, fails its checks, or disagrees with the collection (dim,
    metric, m, more nodes than committed rows) is rebuilt from the segments with a
    RuntimeWarning — never silently used.
 4. One lock serializes every change of the graph and the codes (adds, rebuild, training,
    checkpoint); searches do not take it (the C graph allows searches concurrent with one
    add). A replaced graph is never freed explicitly: searches hold references, and ffi.gc
    frees it after the last.
 5. The codes are opened before the graph, so a graph rebuild never trains them again.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
import warnings
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .. import _native
from ..config import HNSW, PQ, PQ_MIN_TRAIN, QuantConfig
from ..errors import VecDBError
from .codes import Codes

GRAPH_FILE = "hnsw.graph"
# Rows past the checkpoint that trigger a new one: bounds the replay work of an open after a
# crash to about a tenth of the graph (and at least this many rows).
CHECKPOINT_MIN_TAIL = 20_000
CHECKPOINT_TAIL_SHARE = 0.125
PROGRESS_STEP_ROWS = 10_000  # rows per parallel insert call when a build reports progress
# The body checksum of a loaded checkpoint is checked this long after the open: reading the
# whole file at once would slow the first queries (the cold-open path) for nothing.
VERIFY_DELAY = 0.2

Views = Callable[[int], Sequence[np.ndarray]]


class HnswIndex:
    """The graph index of one collection (see the module docstring)."""

    kind = "hnsw"

    def __init__(self, directory: str, dim: int, kernel_metric: str, config: HNSW,
                 shift: int, writable: bool, label: str, fsync: bool = True,
                 quantization: Optional[QuantConfig] = None, unit_rows: bool = False) -> None:
        self.path = os.path.join(directory, GRAPH_FILE)
        self.directory = directory
        self.dim = dim
        self.kernel_metric = kernel_metric
        self.config = config
        self.shift = shift
        self.writable = writable
        self.fsync = fsync  # False under durability="off": a lost checkpoint is rebuilt
        self.label = label
        self._lock = threading.RLock()
        self._graph: Optional[_native.Hnsw] = None
        self._nodes = 0                # node count of _graph (kept here: a C call costs µs)
        self._saved_nodes = 0          # node count of the checkpoint on disk
        self._damage: Optional[str] = None  # set by the verifier: rebuild before next use
        self._verifier: Optional[threading.Thread] = None
        self.rebuilds = 0
        self.codes: Optional[Codes] = None
        if quantization is not None:
            self.codes = Codes(directory, dim, kernel_metric, quantization, writable, fsync,
                               label, unit_rows)

    # -- open / rebuild ----------------------------------------------------------------------

    def open(self, views: Views, n_rows: int) -> None:
        """Loads the checkpoint (or rebuilds) and replays rows up to n_rows."""
        with self._lock:
            if self.codes is not None:  # first: a graph rebuild must not train them again
                self.codes.open(views, self.shift, n_rows)
            reason = self._load(n_rows)
            if reason == "missing" and not self.writable:
                self.build(views, n_rows)  # the writer has not checkpointed yet: not damage
            elif reason:
                self._rebuild(views, n_rows, reason)
            else:
                self._extend(views, n_rows)

    def _load(self, n_rows: int) -> Optional[str]:
        """Maps the checkpoint; returns why it cannot be used (None when loaded)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None if n_rows == 0 else "missing"
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return "empty file"
            buf = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
        finally:
            os.close(fd)
        try:
            info = _native.hnsw_image_info(buf)
            expect = (self.dim, self.kernel_metric, self.config.m)
            found = (info["dim"], info["metric"], info["m"])
            if found != expect:
                return f"it was built for (dim, metric, m) = {found}, not {expect}"
            if info["n_nodes"] > n_rows:
                return f"it holds {info['n_nodes']} nodes but only {n_rows} rows are committed"
            graph = _native.Hnsw.load(buf)
        except VecDBError as e:  # CorruptionError, FormatVersionError
            return str(e)
        self._graph = graph
        self._nodes = self._saved_nodes = graph.n_nodes
        self._start_verifier()
        return None

    def _start_verifier(self) -> None:
        def verify() -> None:
            time.sleep(VERIFY_DELAY)  # let the first queries after an open run undisturbed
            try:
                with open(self.path, "rb") as f:
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as image:
                        ok = _native.hnsw_verify(image)
            except (OSError, ValueError):  # replaced or removed meanwhile: nothing to check
                ok = True
            if not ok:
                self._damage = "its body checksum does not match"

        self._verifier = threading.Thread(target=verify, name=f"vecdb-verify-{self.label}",
                                          daemon=True)
        self._verifier.start()

    def wait_verified(self, timeout: Optional[float] = None) -> bool:
        """Waits for the background checksum of the loaded checkpoint; True if it passed."""
        if self._verifier is not None:
            self._verifier.join(timeout)
        return self._damage is None

    def _rebuild(self, views: Views, n_rows: int, reason: str) -> None:
        if n_rows:
            warnings.warn(f"vecdb: the graph checkpoint {self.path!r} of {self.label} cannot be "
                          f"used ({reason}); rebuilding it from the {n_rows} stored vectors",
                          RuntimeWarning, stacklevel=4)
        self.rebuilds += 1
        self.build(views, n_rows)

    def build(self, views: Views, n_rows: int, previous: Optional["HnswIndex"] = None,
              on_rows: Optional[Callable[[int], Any]] = None) -> None:
        """A new graph over rows [0, n_rows) (parallel), checkpointed when writable; the
        codes reuse previous's trained quantizer when there is one (vacuum). on_rows(n) is
        told of every n rows inserted (a progress bar)."""
        with self._lock:
            if self.codes is not None and previous is not None and \
                    previous.codes is not None:
                self.codes.adopt(previous.codes, views, self.shift, n_rows)
            # the old graph is only dropped, not freed: searches still running hold a
            # reference, and the C graph is freed (ffi.gc) when the last of them returns
            self._graph = self._new_graph()
            self._nodes = 0
            self._saved_nodes = -1  # whatever is on disk is stale
            self._damage = None
            self._extend(views, n_rows, on_rows)
            if self.writable and n_rows:
                self._write_checkpoint()
            if self.codes is not None:
                self.codes.extend(views, self.shift, n_rows)

    def _check_damage(self, views: Views, n_rows: int) -> None:
        if self._damage is not None:
            with self._lock:
                if self._damage is not None:
                    self._rebuild(views, n_rows, self._damage)

    # -- adds --------------------------------------------------------------------------------

    def extend(self, views: Views, n_rows: int) -> None:
        """Inserts rows [nodes, n_rows) (synchronously: searches see them on return), and
        encodes them (training the quantizer first when it is due)."""
        self._check_damage(views, n_rows)
        codes = self.codes
        if self._graph is not None and self._nodes >= n_rows and \
                (codes is None or codes.rows >= n_rows or
                 (not codes.trained and n_rows < codes.config.train_size)):
            return
        with self._lock:
            self._extend(views, n_rows)
            if self.writable and self._tail_is_large():
                self._write_checkpoint()
            if codes is not None:
                codes.extend(views, self.shift, n_rows)
                if codes.unsaved_rows >= max(CHECKPOINT_MIN_TAIL,
                                             CHECKPOINT_TAIL_SHARE * codes.rows):
                    codes.checkpoint()

    def _extend(self, views: Views, n_rows: int,
                on_rows: Optional[Callable[[int], Any]] = None) -> None:
        """Inserts rows [nodes, n_rows): in one parallel call, or, to report progress to
        on_rows, in steps of a fiftieth of them (at least PROGRESS_STEP_ROWS each)."""
        if self._graph is None:
            self._graph, self._nodes = self._new_graph(), 0
        step = n_rows if on_rows is None else max(PROGRESS_STEP_ROWS, n_rows // 50)
        while self._nodes < n_rows:
            end = min(n_rows, self._nodes + step)
            before = self._nodes
            self._graph.add(views(end), self.shift, end)
            self._nodes = self._graph.n_nodes
            if on_rows is not None:
                on_rows(self._nodes - before)

    def _new_graph(self) -> "_native.Hnsw":
        return _native.Hnsw.new(self.dim, self.kernel_metric, m=self.config.m,
                                ef_construction=self.config.ef_construction)

    def _tail_is_large(self) -> bool:
        tail = self._nodes - max(self._saved_nodes, 0)
        return tail >= max(CHECKPOINT_MIN_TAIL, CHECKPOINT_TAIL_SHARE * self._nodes)

    # -- search ------------------------------------------------------------------------------

    def search(self, views: Views, n_rows: int, queries: np.ndarray, k: int, *,
               ef: int, deny: Optional[np.ndarray], n_threads: int = 0,
               allow: Optional[np.ndarray] = None, rescore: Optional[int] = None,
               stats: Optional[dict] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(rows int64 [nq, k], kernel distances float32 [nq, k]) over rows [0, n_rows).
        With trained codes the traversal reads them and the best k * rescore candidates
        (rescore: the quantization's default when None) are rescored exactly. A stats dict,
        when given, gets the "visited" and "distances" counts added (and "rescored")."""
        if self._damage is not None:
            self._check_damage(views, n_rows)
        graph, codes = self._graph, self.codes
        if graph is None or self._nodes < n_rows or \
                (codes is not None and codes.trained and not codes.covers(n_rows)):
            self.extend(views, n_rows)
            graph = self._graph
        if codes is not None and codes.covers(n_rows):
            return codes.search(graph, views(n_rows), self.shift, n_rows, queries, k, ef=ef,
                                rescore=rescore or codes.config.rescore, allow=allow,
                                deny=deny, n_threads=n_threads, stats=stats)
        return graph.search(views(n_rows), self.shift, n_rows, queries, k, ef,
                            allow=allow, deny=deny, n_threads=n_threads, stats=stats)

    def optimize(self, views: Views, n_rows: int, force: bool = False) -> Dict[str, Any]:
        """Trains the quantizer now if it is untrained (and the rows allow it), or again if
        the rows added since training drifted far from it (or force). Returns what it did."""
        codes = self.codes
        if codes is None:
            return {"trained": False, "reason": "the collection is not quantized"}
        least = PQ_MIN_TRAIN if isinstance(codes.config, PQ) else 1
        with self._lock:
            if n_rows < least:
                return {"trained": False,
                        "reason": f"training needs at least {least} rows, {n_rows} stored"}
            if codes.trained and not force and not codes.drifted():
                self._extend(views, n_rows)
                codes.extend(views, self.shift, n_rows)
                return {"trained": False, "reason": "the codes fit the data (no drift)"}
            self._extend(views, n_rows)
            return codes.train(views, self.shift, n_rows)

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Writes the checkpoints of the graph and the codes that changed since their last
        one; True if one was written."""
        with self._lock:
            wrote = False
            if self.codes is not None and self.codes.checkpoint():
                wrote = True
            if not self.writable or self._graph is None or self._nodes == self._saved_nodes:
                return wrote
            self._write_checkpoint()
            return True

    def _write_checkpoint(self) -> None:
        graph = self._graph
        size = graph.serialized_size()
        os.makedirs(self.directory, exist_ok=True)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.ftruncate(fd, size)
            with mmap.mmap(fd, size, access=mmap.ACCESS_WRITE) as out:
                graph.serialize_into(out)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.path)
        if self.fsync:
            dfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self._saved_nodes = self._nodes

    # -- lifecycle ---------------------------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        graph = self._graph
        nodes = self._nodes if graph else 0
        graph_bytes = graph.memory_bytes if graph else 0
        codes = self.codes
        quantized = codes is not None and codes.trained
        out = {"type": "hnsw", "m": self.config.m,
               "ef_construction": self.config.ef_construction,
               "ef_search": self.config.ef_search, "nodes": nodes,
               "checkpoint_nodes": max(self._saved_nodes, 0), "graph_bytes": graph_bytes,
               "rebuilds": self.rebuilds,
               "code_bytes_per_vector": codes.code_size if quantized else 4 * self.dim,
               "graph_bytes_per_vector": graph_bytes / nodes if nodes else 0.0}
        if codes is not None:
            out["quantization"] = codes.stats()
        return out

    def close(self) -> None:
        """Drops the graph (freed once no running search holds it)."""
        with self._lock:
            self._graph = None
            self._nodes = 0
