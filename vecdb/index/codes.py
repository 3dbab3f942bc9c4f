"""Quantized codes of a collection's vectors (SQ8 or PQ), held in RAM for the graph to
traverse; the float32 vectors stay on disk and only rescore the best candidates.

Life of the codes of one collection generation:
  - untrained: fewer than ``train_size`` rows were ever committed; the graph reads float32;
  - training: on the first extend that reaches ``train_size`` rows (or ``optimize()``), the
    quantizer is fitted on a sample of at most TRAIN_SAMPLE rows (deterministic: evenly
    spaced rows), every row so far is encoded, and a checkpoint is written;
  - trained: each extend encodes the new rows; searches traverse the codes.

The checkpoint ``codes.vdbq`` (storage/arrayfile.py: magic, version, checksums) holds the
quantizer's parameters, the codes of rows [0, rows) as one array per segment ("codes.<i>",
mapped back in place) and the training statistics. Codes are
derived state, like the graph: a checkpoint that is missing or fails its checks is rebuilt
by training again (with a RuntimeWarning when rows were expected), never silently used.

Invariants:
 1. Row r's code lives in ``segments[r >> CODE_SHIFT][r & CODE_MASK]``; segments are
    allocated whole and never move, so a search holding a snapshot of the segment list
    reads only rows it was told are encoded while new rows are written behind them.
 2. ``rows`` (rows encoded) only grows within a quantizer; a retrain builds a new quantizer
    and new segments and swaps them in with one assignment of a ``_State``, so a search sees
    the old state or the new one, never a mix.
 3. Writers (extend, train, checkpoint) hold the caller's lock (the graph's index lock).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import _native
from ..config import PQ, SQ8, QuantConfig
from ..errors import VecDBError
from ..storage import arrayfile

CODES_FILE = "codes.vdbq"
MAGIC = b"VDBCODE\0"
VERSION = 1
CODE_SHIFT = 16
CODE_ROWS = 1 << CODE_SHIFT
CODE_MASK = CODE_ROWS - 1
TRAIN_SAMPLE = 65_536     # rows the quantizer is fitted on, at most
TRAIN_ITERS = 25
DRIFT_MIN_ROWS = 1_000    # rows encoded since training before drift is judged
DRIFT_FACTOR = 1.5        # retrain when their mean error passes the training error by this
MISSING = "it is missing"

Views = Callable[[int], Sequence[np.ndarray]]


def code_metric(config: Any, kernel_metric: str, unit_rows: bool) -> str:
    """The metric codes are scored with. Over unit rows (cosine collections) PQ scores L2,
    which orders them as IP does but estimates near rows better (csrc/vecdb.h); SQ8 keeps
    IP there, saving the 4-byte norm an L2 code row carries."""
    return "l2" if unit_rows and not isinstance(config, SQ8) else kernel_metric


def sample_rows(n_rows: int, limit: int = TRAIN_SAMPLE) -> np.ndarray:
    """At most limit rows of [0, n_rows), evenly spaced (deterministic)."""
    if n_rows <= limit:
        return np.arange(n_rows, dtype=np.int64)
    return (np.arange(limit, dtype=np.int64) * n_rows) // limit


def gather(segments: Sequence[np.ndarray], shift: int, rows: np.ndarray) -> np.ndarray:
    """float32 [len(rows), dim] copies of the given rows of segmented storage."""
    out = np.empty((len(rows), segments[0].shape[1]), dtype=np.float32)
    seg = rows >> shift
    for s in np.unique(seg):
        pick = seg == s
        out[pick] = segments[int(s)][rows[pick] & ((1 << shift) - 1)]
    return out


def row_ranges(start: int, stop: int, *shifts: int):
    """Splits [start, stop) into ranges that cross no segment boundary of any shift."""
    while start < stop:
        end = stop
        for shift in shifts:
            end = min(end, ((start >> shift) + 1) << shift)
        yield start, end
        start = end


@dataclass
class ErrorStats:
    """Mean quantization error (squared L2 to the decoded row) at training, and of the rows
    encoded since: optimize() retrains when the latter drifts far above the former."""

    trained: float = 0.0
    recent_sum: float = 0.0
    recent_n: int = 0

    def add(self, errors: np.ndarray) -> None:
        self.recent_sum += float(errors.sum(dtype=np.float64))
        self.recent_n += len(errors)

    @property
    def recent(self) -> float:
        return self.recent_sum / self.recent_n if self.recent_n else 0.0

    def drifted(self) -> bool:
        return self.recent_n >= DRIFT_MIN_ROWS and \
            self.recent > DRIFT_FACTOR * max(self.trained, 1e-30)

    def restarted(self) -> "ErrorStats":
        """The same training error, no rows since (vacuum's new generation)."""
        return ErrorStats(self.trained)

    def to_meta(self) -> Dict[str, Any]:
        return {"train_error": self.trained, "recent_sum": self.recent_sum,
                "recent_n": self.recent_n}

    @classmethod
    def from_meta(cls, meta: Dict[str, Any]) -> "ErrorStats":
        return cls(float(meta["train_error"]), float(meta["recent_sum"]),
                   int(meta["recent_n"]))


def read_checkpoint(path: str, magic: bytes, version: int,
                    due: bool) -> Tuple[Optional[str], Any, Any]:
    """(why the trained checkpoint at path cannot be used, its meta, its arrays): the reason
    is None when it loaded, MISSING when it is absent although training was due, and None
    with no meta when it is absent and nothing was due. Shared by codes and IVF-PQ lists."""
    try:
        found = arrayfile.load(path, magic, version)
    except VecDBError as e:
        return str(e), None, None
    if found is None:
        return (MISSING if due else None), None, None
    return None, found[1], found[2]


def warn_unusable(what: str, path: str, label: str, reason: Optional[str], n_rows: int,
                  writable: bool, due: bool, stacklevel: int) -> None:
    """Says (RuntimeWarning) that a checkpoint is damaged and will be trained again; a
    missing one seen by a reader is not damage (the writer has not saved it yet)."""
    if reason is None or not due or (reason == MISSING and not writable):
        return
    warnings.warn(f"vecdb: the {what} checkpoint {path!r} of {label} cannot be used "
                  f"({reason}); training it again on the {n_rows} stored vectors",
                  RuntimeWarning, stacklevel=stacklevel + 1)


@dataclass
class _State:
    quantizer: _native.Quantizer
    segments: List[np.ndarray] = field(default_factory=list)
    rows: int = 0
    errors: ErrorStats = field(default_factory=ErrorStats)
    trained_rows: int = 0


class Codes:
    """The SQ8 / PQ codes of one collection generation (see the module docstring)."""

    def __init__(self, directory: str, dim: int, kernel_metric: str, config: QuantConfig,
                 writable: bool, fsync: bool, label: str, unit_rows: bool = False) -> None:
        self.path = os.path.join(directory, CODES_FILE)
        self.dim = dim
        self.kernel_metric = kernel_metric  # of the exact rescoring
        self.code_metric = code_metric(config, kernel_metric, unit_rows)  # of the traversal
        self.config = config
        self.writable = writable
        self.fsync = fsync
        self.label = label
        self._state: Optional[_State] = None
        self._saved_rows = -1
        self.trainings = 0
        self._rows_cache: Optional[Tuple[Any, ...]] = None

    # -- state -------------------------------------------------------------------------------

    @property
    def trained(self) -> bool:
        return self._state is not None

    @property
    def rows(self) -> int:
        state = self._state
        return state.rows if state is not None else 0

    @property
    def unsaved_rows(self) -> int:
        """Rows encoded since the last checkpoint (all of them before the first)."""
        return self.rows - max(self._saved_rows, 0)

    def covers(self, n_rows: int) -> bool:
        state = self._state
        return state is not None and state.rows >= n_rows

    @property
    def code_size(self) -> int:
        state = self._state
        if state is not None:
            return state.quantizer.code_size
        if isinstance(self.config, PQ):
            return self.config.m
        return self.dim + (4 if self.code_metric == "l2" else 0)

    # -- open / train / extend (under the caller's lock) ----------------------------------------

    def open(self, views: Views, shift: int, n_rows: int) -> None:
        """Loads the checkpoint (or trains when due) and encodes rows up to n_rows."""
        warn_unusable("codes", self.path, self.label, self._load(n_rows), n_rows,
                      self.writable, n_rows >= self.config.train_size, stacklevel=5)
        self.extend(views, shift, n_rows)

    def _load(self, n_rows: int) -> Optional[str]:
        """Loads the checkpoint; returns why it cannot be used (None when loaded or absent)."""
        reason, meta, arrays = read_checkpoint(self.path, MAGIC, VERSION,
                                               n_rows >= self.config.train_size)
        if meta is None:
            return reason
        expect = (self.config.kind, self.code_metric, self.dim, self._m)
        try:
            got = (meta["kind"], meta["metric"], meta["dim"], meta["m"])
            rows = int(meta["rows"])
            if got != expect:
                return f"it was made for (kind, metric, dim, m) = {got}, not {expect}"
            if rows > n_rows:
                return f"it holds {rows} rows but only {n_rows} are committed"
            quantizer = _native.Quantizer(self.config.kind, self.code_metric, self.dim,
                                          np.array(arrays["params"]), m=self._m)
            parts = [arrays[f"codes.{i}"] for i in range((rows + CODE_MASK) >> CODE_SHIFT)]
            for i, part in enumerate(parts):
                want = (min(CODE_ROWS, rows - (i << CODE_SHIFT)), quantizer.code_size)
                if part.shape != want:
                    return f"its codes segment {i} has shape {part.shape}, expected {want}"
            errors = ErrorStats.from_meta(meta)
            trained_rows = int(meta["trained_rows"])
        except (KeyError, TypeError, ValueError, VecDBError) as e:
            return f"its directory is malformed ({e})"
        state = _State(quantizer, [], 0, errors, trained_rows)
        for part in parts:
            if len(part) == CODE_ROWS:
                state.segments.append(part)  # a view of the copy-on-write mapping
            else:  # the last, partial segment grows: copy it into a whole one
                whole = np.empty((CODE_ROWS, quantizer.code_size), dtype=np.uint8)
                whole[: len(part)] = part
                state.segments.append(whole)
        state.rows = rows
        self._state = state
        self._saved_rows = rows
        return None

    @property
    def _m(self) -> int:
        return self.config.m if isinstance(self.config, PQ) else 0

    def extend(self, views: Views, shift: int, n_rows: int) -> bool:
        """Encodes rows [rows, n_rows); trains first when due. True if it trained."""
        state = self._state
        if state is None:
            if n_rows < self.config.train_size:
                return False
            # a reader first looks for the codes the writer trained meanwhile
            if self.writable or self._load(n_rows) is not None:
                self.train(views, shift, n_rows)
                return True
            state = self._state
        if state.rows < n_rows:
            self._encode(state, views(n_rows), shift, state.rows, n_rows)
        return False

    def train(self, views: Views, shift: int, n_rows: int) -> Dict[str, Any]:
        """Fits a new quantizer on a sample of rows [0, n_rows), encodes them all, swaps it in
        (invariant 2) and checkpoints. Returns what it did."""
        segments = views(n_rows)
        sample = gather(segments, shift, sample_rows(n_rows))
        if isinstance(self.config, SQ8):
            params = _native.sq8_train(sample)
        else:
            params = _native.pq_train(sample, self.config.m, iters=TRAIN_ITERS)
        quantizer = _native.Quantizer(self.config.kind, self.code_metric, self.dim, params,
                                      m=self._m)
        _, err = quantizer.encode(sample, errors=True)
        state = _State(quantizer, errors=ErrorStats(float(err.mean(dtype=np.float64))),
                       trained_rows=n_rows)
        self._encode(state, segments, shift, 0, n_rows, measure=False)
        self._state = state
        self.trainings += 1
        self._saved_rows = -1
        if self.writable:
            self.checkpoint()
        return {"trained": True, "rows": n_rows, "sample": len(sample),
                "train_error": state.errors.trained}

    def adopt(self, other: "Codes", views: Views, shift: int, n_rows: int) -> None:
        """Encodes rows [0, n_rows) with other's trained quantizer (same config), keeping its
        training statistics: vacuum's new generation holds the same data, fewer rows."""
        old = other._state
        if old is None or other.code_metric != self.code_metric:
            return
        state = _State(old.quantizer, errors=old.errors.restarted(),
                       trained_rows=old.trained_rows)
        self._encode(state, views(n_rows), shift, 0, n_rows)
        self._state, self._saved_rows = state, -1
        if self.writable:
            self.checkpoint()

    def _encode(self, state: _State, segments: Sequence[np.ndarray], shift: int, start: int,
                stop: int, measure: bool = True) -> None:
        q = state.quantizer
        for lo, hi in row_ranges(start, stop, shift, CODE_SHIFT):
            seg = lo >> CODE_SHIFT
            while len(state.segments) <= seg:
                state.segments.append(np.empty((CODE_ROWS, q.code_size), dtype=np.uint8))
            mask = (1 << shift) - 1
            x = segments[lo >> shift][lo & mask:(lo & mask) + hi - lo]
            if measure:
                codes, err = q.encode(x, errors=True)
                state.errors.add(err)
            else:
                codes = q.encode(x)
            state.segments[seg][lo & CODE_MASK:(lo & CODE_MASK) + hi - lo] = codes
            state.rows = hi  # published after the codes are written (invariant 1)

    def drifted(self) -> bool:
        state = self._state
        return state is not None and state.errors.drifted()

    # -- search ------------------------------------------------------------------------------

    def search(self, graph: _native.Hnsw, views: Sequence[np.ndarray], shift: int,
               n_rows: int, queries: np.ndarray, k: int, *, ef: int, rescore: int,
               allow: Optional[np.ndarray], deny: Optional[np.ndarray], n_threads: int,
               stats: Optional[dict]) -> Tuple[np.ndarray, np.ndarray]:
        """Traverses the graph on the codes for k * rescore candidates, then rescores them
        exactly from the float32 rows. The caller checked covers(n_rows)."""
        state = self._state
        codes, rows = self._checked_rows(state, views, shift, n_rows)
        n_cand = max(k, min(k * rescore, n_rows))
        cand, _ = graph.search_codes(state.quantizer, codes, CODE_SHIFT, n_rows, queries,
                                     n_cand, max(ef, n_cand), allow=allow, deny=deny,
                                     n_threads=n_threads, stats=stats)
        if stats is not None:
            stats["rescored"] = stats.get("rescored", 0) + int((cand >= 0).sum())
        return _native.rescore(rows, shift, n_rows, queries, cand, k, self.kernel_metric,
                               n_threads=n_threads)

    def _checked_rows(self, state: _State, views: Sequence[np.ndarray], shift: int,
                      n_rows: int) -> Tuple[_native.Rows, _native.Rows]:
        """The checked code rows and float rows of [0, n_rows), built once per (state,
        views, n_rows): a single query then skips re-checking every segment."""
        cached = self._rows_cache
        if cached is not None and cached[0] is state and cached[1] is views and \
                cached[2] == n_rows:
            return cached[3], cached[4]
        codes = _native.code_rows(state.segments, CODE_SHIFT, n_rows, state.quantizer.code_size)
        rows = _native.float_rows(views, shift, n_rows, self.dim)
        self._rows_cache = (state, views, n_rows, codes, rows)
        return codes, rows

    # -- checkpoint / stats ----------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Writes the checkpoint if codes were added since the last one; True if written."""
        state = self._state
        if not self.writable or state is None or state.rows == self._saved_rows:
            return False
        rows = state.rows
        arrays = {"params": state.quantizer.params}
        for i, start in enumerate(range(0, rows, CODE_ROWS)):  # one array per segment
            arrays[f"codes.{i}"] = state.segments[i][: min(rows, start + CODE_ROWS) - start]
        meta = {"kind": self.config.kind, "metric": self.code_metric, "dim": self.dim,
                "m": self._m, "rows": rows, "trained_rows": state.trained_rows,
                **state.errors.to_meta()}
        arrayfile.save(self.path, MAGIC, VERSION, meta, arrays, fsync=self.fsync)
        self._saved_rows = rows
        return True

    def stats(self) -> Dict[str, Any]:
        state = self._state
        out: Dict[str, Any] = {**self.config.to_dict(), "trained": state is not None,
                               "code_size": self.code_size, "encoded_rows": self.rows,
                               "trainings": self.trainings}
        if state is not None:
            out.update(trained_rows=state.trained_rows, train_error=state.errors.trained,
                       recent_error=state.errors.recent,
                       code_bytes=state.rows * state.quantizer.code_size)
        return out
