"""Append-only row segments of one collection, memory-mapped for search.

A collection's vectors live in files ``vectors.<n>.f32`` (float32 rows of dim values) and its
int ids in ``ids.<n>.i64`` (one int64 per row: the id, or ID_NOT_INT for a str id, whose
value is then in LMDB); segment n of either holds rows
[n << shift, (n + 1) << shift). A segment file grows by doubling (fallocate) up to its
capacity of 1 << shift rows, which is chosen so that a full segment is at most 1 GiB.

File layout (little-endian):

    offset  size  field
    0       8     magic b"VDBSEG\\x00\\x01"
    8       4     format version (1)
    12      4     byte-order mark 0x01020304
    16      4     dim
    20      4     segment number n
    24      4     shift (log2 of the row capacity)
    28      4     dtype code (0 = float32, 1 = int64)
    32      16    collection uuid (raw bytes)
    48      4     CRC-32 of bytes [0, 48)
    52..4095      zero
    4096          rows: row i of the segment at 4096 + i * dim * itemsize

Invariants:
 1. Rows are only written past the committed watermark W (never over a committed row), so a
    crash during an append cannot damage committed data; rows past W are garbage to ignore.
 2. A header that fails magic, version, checksum, dim, number or uuid checks is never used.
 3. Views handed out stay valid after the store remaps or grows (numpy keeps the old mmap
    alive), so a query never reads unmapped memory while a writer appends.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import zlib
from typing import List, Optional, Sequence

import numpy as np

from ..errors import CorruptionError, DatabaseClosedError, FormatVersionError

MAGIC = b"VDBSEG\x00\x01"
VERSION = 1
BOM = 0x01020304
HEADER_BYTES = 4096
_HEADER = struct.Struct("<8sIIIIII16s")
_CRC = struct.Struct("<I")
MAX_SEGMENT_BYTES = 1 << 30
MIN_FILE_ROWS = 256


ID_NOT_INT = -(2**63)  # ids column: the row's id is a str (or this very int): ask LMDB
VECTORS = ("vectors", "f32", np.dtype(np.float32), 0)
IDS = ("ids", "i64", np.dtype(np.int64), 1)


def segment_shift_for(row_bytes: int) -> int:
    """log2 of the rows per segment: the largest power of two keeping a segment <= 1 GiB."""
    rows = max(1, MAX_SEGMENT_BYTES // row_bytes)
    return rows.bit_length() - 1


def _header(dim: int, number: int, shift: int, dtype_code: int, uuid: bytes) -> bytes:
    head = _HEADER.pack(MAGIC, VERSION, BOM, dim, number, shift, dtype_code, uuid)
    return head + _CRC.pack(zlib.crc32(head))


class _Segment:
    __slots__ = ("fd", "path", "file_rows", "view")

    def __init__(self, fd: int, path: str, file_rows: int) -> None:
        self.fd = fd
        self.path = path
        self.file_rows = file_rows
        self.view: Optional[np.ndarray] = None  # [mapped rows, dim] float32, read-only


class SegmentStore:
    """The vector segments of one collection directory.

    >>> import tempfile, numpy as np
    >>> store = SegmentStore(tempfile.mkdtemp(), dim=2, uuid=b"0" * 16, writable=True)
    >>> store.append(0, np.ones((3, 2), np.float32)); store.sync()
    >>> store.views(3)[0][:3].tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    >>> store.close()
    """

    def __init__(self, directory: str, dim: int, uuid: bytes, writable: bool,
                 kind: tuple = VECTORS, shift: Optional[int] = None) -> None:
        self.directory = directory
        self.dim = dim
        self.uuid = uuid
        self.writable = writable
        self.stem, self.ext, self.dtype, self.dtype_code = kind
        self.row_bytes = dim * self.dtype.itemsize
        self.shift = segment_shift_for(self.row_bytes) if shift is None else shift
        self._segments: List[_Segment] = []
        self._dirty: set = set()
        self._lock = threading.Lock()
        self._views: "tuple[np.ndarray, ...]" = ()
        self._viewed_rows = 0
        self._scalars: Optional[tuple] = None
        self._closed = False

    # -- files -------------------------------------------------------------------------------

    def _path(self, number: int) -> str:
        return os.path.join(self.directory, f"{self.stem}.{number}.{self.ext}")

    def _open_segment(self, number: int, create: bool) -> _Segment:
        path = self._path(number)
        if create and not os.path.exists(path):
            os.makedirs(self.directory, exist_ok=True)
            tmp = path + ".tmp"
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            os.pwrite(fd, _header(self.dim, number, self.shift, self.dtype_code, self.uuid), 0)
            os.ftruncate(fd, HEADER_BYTES)
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, path)
            _fsync_dir(self.directory)
        flags = (os.O_RDWR if self.writable else os.O_RDONLY) | os.O_CLOEXEC
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise CorruptionError(f"vector segment {path!r} is missing") from None
        try:
            self._check_header(fd, path, number)
            size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        return _Segment(fd, path, max(0, size - HEADER_BYTES) // self.row_bytes)

    def _check_header(self, fd: int, path: str, number: int) -> None:
        raw = os.pread(fd, _HEADER.size + _CRC.size, 0)
        if len(raw) < _HEADER.size + _CRC.size:
            raise CorruptionError(f"vector segment {path!r} is truncated (no header)")
        magic, version, bom, dim, num, shift, dtype, uuid = _HEADER.unpack_from(raw)
        if magic != MAGIC:
            raise CorruptionError(f"vector segment {path!r} has a bad magic {magic!r}")
        if _CRC.unpack_from(raw, _HEADER.size)[0] != zlib.crc32(raw[: _HEADER.size]):
            raise CorruptionError(f"vector segment {path!r} fails its header checksum")
        if version > VERSION:
            raise FormatVersionError(f"vector segment {path!r} has newer format version {version}")
        if (bom, dim, num, shift, dtype, uuid) != (BOM, self.dim, number, self.shift,
                                                   self.dtype_code, self.uuid):
            raise CorruptionError(f"vector segment {path!r} does not belong to this collection")

    def _segment(self, number: int, create: bool) -> _Segment:
        while len(self._segments) <= number:
            self._segments.append(self._open_segment(len(self._segments), create))
        return self._segments[number]

    # -- writing -----------------------------------------------------------------------------

    def append(self, start_row: int, vectors: np.ndarray) -> None:
        """Writes rows ([n, dim] of the store's dtype, C order) at [start_row, start_row + n)."""
        data = memoryview(np.ascontiguousarray(vectors, dtype=self.dtype)).cast("B")
        n = len(vectors)
        cap = 1 << self.shift
        with self._lock:
            self._check_open()
            row, done = start_row, 0
            while done < n:
                number, local = row >> self.shift, row & (cap - 1)
                take = min(n - done, cap - local)
                seg = self._segment(number, create=True)
                if local + take > seg.file_rows:
                    self._grow(seg, local + take, cap)
                offset = HEADER_BYTES + local * self.row_bytes
                chunk = data[done * self.row_bytes : (done + take) * self.row_bytes]
                while chunk:
                    written = os.pwrite(seg.fd, chunk, offset)
                    chunk, offset = chunk[written:], offset + written
                self._dirty.add(number)
                row, done = row + take, done + take

    def _grow(self, seg: _Segment, need_rows: int, cap: int) -> None:
        rows = max(MIN_FILE_ROWS, seg.file_rows)
        while rows < need_rows:
            rows *= 2
        rows = min(rows, cap)
        start = HEADER_BYTES + seg.file_rows * self.row_bytes
        try:  # real blocks, not a sparse hole: later writes skip block allocation (~3x faster)
            os.posix_fallocate(seg.fd, start, (rows - seg.file_rows) * self.row_bytes)
        except OSError:  # file system without fallocate
            os.ftruncate(seg.fd, HEADER_BYTES + rows * self.row_bytes)
        seg.file_rows = rows

    def sync(self) -> None:
        """Makes every appended row durable (fdatasync of the segments written since)."""
        with self._lock:
            for number in sorted(self._dirty):
                os.fdatasync(self._segments[number].fd)
            self._dirty.clear()

    # -- reading -----------------------------------------------------------------------------

    def views(self, n_rows: int) -> "tuple[np.ndarray, ...]":
        """Read-only [rows, dim] views of the segments covering rows [0, n_rows)."""
        views = self._views
        if n_rows <= self._viewed_rows:
            return views
        with self._lock:
            self._check_open()
            if n_rows > self._viewed_rows:
                self._remap(n_rows)
            return self._views

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"the vector segments in {self.directory!r} are closed")

    def _remap(self, n_rows: int) -> None:
        cap = 1 << self.shift
        needed = (n_rows + cap - 1) >> self.shift
        views = list(self._views)
        for number in range(needed):
            seg = self._segment(number, create=False)
            rows_here = min(cap, n_rows - (number << self.shift))
            if seg.view is not None and len(seg.view) >= rows_here:
                continue
            size = os.fstat(seg.fd).st_size
            seg.file_rows = max(seg.file_rows, (size - HEADER_BYTES) // self.row_bytes)
            if seg.file_rows < rows_here:
                raise CorruptionError(
                    f"vector segment {seg.path!r} holds {seg.file_rows} rows, "
                    f"the database says {rows_here}"
                )
            mm = mmap.mmap(seg.fd, HEADER_BYTES + seg.file_rows * self.row_bytes,
                           access=mmap.ACCESS_READ)
            seg.view = np.frombuffer(mm, dtype=self.dtype, count=seg.file_rows * self.dim,
                                     offset=HEADER_BYTES).reshape(seg.file_rows, self.dim)
            if number < len(views):
                views[number] = seg.view
            else:
                views.append(seg.view)
        self._views = tuple(views)
        # every segment but the last is mapped whole (cap rows), so coverage is contiguous
        self._viewed_rows = ((len(views) - 1) << self.shift) + len(views[-1])

    def scalars(self, n_rows: int) -> "tuple[memoryview, ...]":
        """For a one-value-per-row store: flat memoryviews of the segments covering rows
        [0, n_rows), for plain-Python indexing (cheaper than numpy for a few rows)."""
        views = self.views(n_rows)
        cached = self._scalars
        if cached is None or cached[0] is not views:
            cached = self._scalars = (views, tuple(memoryview(v.reshape(-1)) for v in views))
        return cached[1]

    def read(self, rows: "Sequence[int] | np.ndarray", n_rows: int) -> np.ndarray:
        """Copies of the given rows (each < n_rows) as [len(rows), dim]."""
        views = self.views(n_rows)
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=self.dtype)
        segment_of = rows >> self.shift
        for number in np.unique(segment_of):
            picked = segment_of == number
            out[picked] = views[number][rows[picked] & ((1 << self.shift) - 1)]
        return out

    def __del__(self) -> None:  # a store dropped by a generation switch closes its files
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for seg in self._segments:
                if seg.fd >= 0:
                    os.close(seg.fd)
                    seg.fd = -1
            self._segments = []
            self._views = ()
            self._viewed_rows = 0


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
