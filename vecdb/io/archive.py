"""The backup archive format (``.vdb.tar.zst``): writing it, and reading it back verified.

An archive is ONE zstandard frame (with its content checksum) holding a tar stream (POSIX
pax format) of regular files, in this order:

    VECDB_BACKUP                       first: JSON {"magic": "vecdb-backup",
                                       "format_version": 1, "vecdb_version", ...}
    data.mdb                           a copy of every table of the LMDB environment
    collections/<uuid>[.v<g>]/<file>   per collection generation: vector and id segments
                                       (header + committed rows) and derived checkpoints
                                       (hnsw.graph, codes.vdbq, ivfpq.vdbq, filters.cols)
    MANIFEST.json                      last: JSON {"magic", "format_version", "collections",
                                       "members": [{"path", "size", "sha256"}, ...], ...}
                                       listing every member above (the header included)

followed by the tar end blocks (zeros) and nothing else.

Invariants:
 1. A writer never leaves a half archive at its destination: it writes ``<dest>.partial``,
    fsyncs it, renames it over ``dest`` and fsyncs the folder; a failure removes the
    partial file.
 2. Every member is read once: its sha256 is computed while its bytes stream into the tar
    (writing) or into the staging folder (reading).
 3. A reader accepts only regular files at the paths above, each once, the header first and
    the manifest last; then every manifest member must have arrived with its size and
    sha256, nothing more, and the zstd frame must end exactly at the end of the file (its
    checksum verified). Anything else (not zstd, not tar, damaged, truncated, a mismatch, an
    unknown or newer format) raises ArchiveError naming the archive and what failed.

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp(); w = ArchiveWriter(os.path.join(d, "a.vdb.tar.zst"), 3)
    >>> _ = w.add_bytes(HEADER_MEMBER, header_bytes({}))
    >>> size = w.finish({"magic": MAGIC, "format_version": FORMAT_VERSION,
    ...                  "collections": [], "members": w.members})
    >>> extract(os.path.join(d, "a.vdb.tar.zst"), os.path.join(d, "out"))["members"][0]["path"]
    'VECDB_BACKUP'
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import re
import tarfile
import threading
from typing import Any, BinaryIO, Callable, Optional

import zstandard

from ..errors import ArchiveError, CorruptionError
from ..rowset import CHECKPOINT_FILES as CHECKPOINT_FILES_BY_COMPONENT
from ..storage.segments import IDS, VECTORS

MAGIC = "vecdb-backup"
FORMAT_VERSION = 1
HEADER_MEMBER = "VECDB_BACKUP"
MANIFEST_MEMBER = "MANIFEST.json"
LMDB_MEMBER = "data.mdb"
CHECKPOINT_FILES = tuple(CHECKPOINT_FILES_BY_COMPONENT.values())
MAX_HEADER_BYTES = 1 << 16
MAX_MANIFEST_BYTES = 1 << 28
IO_CHUNK = 1 << 20          # bytes per read / write of a member
WRITE_AHEAD = 4             # chunks a restore decompresses ahead of its writer thread
ZSTD_INPUT_CHUNK = 1 << 16  # compressed bytes fed to the decompressor at a time
TAR_BUFSIZE = 1 << 20

_SEGMENT_NAMES = "|".join(rf"{re.escape(stem)}\.\d+\.{re.escape(ext)}"
                          for stem, ext, _, _ in (VECTORS, IDS))
_MEMBER_PATH = re.compile(
    rf"^(?:{re.escape(LMDB_MEMBER)}|collections/[0-9a-f]{{32}}(?:\.v[1-9]\d*)?/"
    rf"(?:{_SEGMENT_NAMES}|{'|'.join(re.escape(n) for n in CHECKPOINT_FILES)}))$")

OnBytes = Optional[Callable[[int], Any]]


def member_path_ok(path: str) -> bool:
    """True if path is where a data member of an archive may be (no '..', no absolute path,
    nothing but data.mdb and the files of collection folders)."""
    return bool(_MEMBER_PATH.match(path))


def header_bytes(extra: dict[str, Any]) -> bytes:
    """The content of the first member: magic, format version and extra (versions)."""
    return json.dumps({"magic": MAGIC, "format_version": FORMAT_VERSION, **extra},
                      sort_keys=True).encode()


# -- writing --------------------------------------------------------------------------------

class _FdReader:
    """read(n) over bytes [0, size) of an open file, hashing them and reporting progress."""

    def __init__(self, fd: int, size: int, label: str, on_bytes: OnBytes) -> None:
        self.fd, self.size, self.label, self.on_bytes = fd, size, label, on_bytes
        self.offset = 0
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        left = self.size - self.offset
        n = left if n is None or n < 0 else min(n, left)
        data = os.pread(self.fd, n, self.offset) if n else b""
        if len(data) < n:
            raise CorruptionError(f"{self.label}: the file ended at byte {self.offset + len(data)}"
                                  f" of {self.size} while it was being backed up")
        self.offset += len(data)
        self.sha.update(data)
        if self.on_bytes is not None and data:
            self.on_bytes(len(data))
        return data


class ArchiveWriter:
    """Streams members into ``<dest>.partial``; ``finish`` adds the manifest and renames it
    to dest (invariant 1). ``members`` lists {"path", "size", "sha256"} of what was added."""

    def __init__(self, dest: str, level: int, on_bytes: OnBytes = None,
                 mtime: float = 0.0) -> None:
        self.dest = dest
        self.partial = dest + ".partial"
        self.on_bytes = on_bytes
        self.mtime = int(mtime)
        self.members: list[dict[str, Any]] = []
        self._file: BinaryIO | None = open(self.partial, "wb")  # noqa: SIM115 - closed by finish/abort
        try:
            compressor = zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True)
            self._zstd = compressor.stream_writer(self._file, closefd=False)
            self._tar = tarfile.open(  # noqa: SIM115 - closed by finish
                fileobj=self._zstd, mode="w", format=tarfile.PAX_FORMAT,
                copybufsize=IO_CHUNK)
        except BaseException:
            self.abort()
            raise

    def _info(self, path: str, size: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.size, info.mtime, info.mode = size, self.mtime, 0o644
        return info

    def add_file(self, path: str, fd: int, size: int, label: str) -> dict[str, Any]:
        """Adds bytes [0, size) of the open file fd as member path."""
        reader = _FdReader(fd, size, label, self.on_bytes)
        self._tar.addfile(self._info(path, size), reader)
        entry = {"path": path, "size": size, "sha256": reader.sha.hexdigest()}
        self.members.append(entry)
        return entry

    def add_bytes(self, path: str, data: bytes) -> dict[str, Any]:
        self._tar.addfile(self._info(path, len(data)), io.BytesIO(data))
        entry = {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        self.members.append(entry)
        return entry

    def finish(self, manifest: dict[str, Any]) -> int:
        """Adds the manifest (last), closes the streams, fsyncs and renames the partial file
        to dest; returns the archive's size in bytes."""
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        self._tar.addfile(self._info(MANIFEST_MEMBER, len(data)), io.BytesIO(data))
        self._tar.close()
        self._zstd.close()  # ends the zstd frame (closefd=False: the file stays open)
        f, self._file = self._file, None
        try:
            f.flush()
            os.fsync(f.fileno())
            size = os.fstat(f.fileno()).st_size
        finally:
            f.close()
        os.rename(self.partial, self.dest)
        fsync_dir(os.path.dirname(self.dest) or ".")
        return size

    def abort(self) -> None:
        """Closes what is open and removes the partial file (after a failure)."""
        f, self._file = self._file, None
        if f is not None:
            f.close()
        try:
            os.unlink(self.partial)
        except FileNotFoundError:
            pass


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading --------------------------------------------------------------------------------

class _ZstdInput:
    """File-like read(n) of the decompressed bytes of the single zstd frame of a file.

    python-zstandard's stream_reader ends quietly on a frame cut short, so this feeds a
    decompressobj itself and raises ArchiveError when the file ends before the frame does
    (truncated), when data follows the frame, or when zstd finds damage (its checksum)."""

    def __init__(self, f: BinaryIO, fail: Callable[[str], ArchiveError],
                 on_bytes: OnBytes) -> None:
        self._f, self._fail, self._on_bytes = f, fail, on_bytes
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._buf = bytearray()
        self._done = False
        self._empty = True

    def _fill(self) -> None:
        chunk = self._f.read(ZSTD_INPUT_CHUNK)
        if self._on_bytes is not None and chunk:
            self._on_bytes(len(chunk))
        if not chunk:
            if self._empty:
                raise self._fail("the file is empty")
            if not self._d.eof:
                raise self._fail("truncated (the file ends inside its zstd frame)")
            self._done = True
            return
        self._empty = False
        if self._d.eof:
            raise self._fail("unexpected data after the end of its zstd frame")
        try:
            self._buf += self._d.decompress(chunk)
        except zstandard.ZstdError as e:
            raise self._fail(f"damaged zstd stream ({e})") from None
        if self._d.eof and self._d.unused_data:
            raise self._fail("unexpected data after the end of its zstd frame")

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            while not self._done:
                self._fill()
            n = len(self._buf)
        while len(self._buf) < n and not self._done:
            self._fill()
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def finish(self) -> None:
        """Reads to the end: only zeros (tar padding) may follow the tar stream."""
        while True:
            if any(self._buf):
                raise self._fail("unexpected data after the end of its tar stream")
            self._buf.clear()
            if self._done:
                return
            self._fill()


def extract(archive: str, staging: str, on_bytes: OnBytes = None) -> dict[str, Any]:
    """Extracts the archive into the (existing, empty) folder staging, verifying it all
    (invariant 3); returns the manifest. On ArchiveError, staging holds partial files: the
    caller removes it."""
    def fail(what: str) -> ArchiveError:
        return ArchiveError(f"archive {archive!r}: {what}")

    received: dict[str, tuple[int, str]] = {}
    try:
        with open(archive, "rb") as f:
            stream = _ZstdInput(f, fail, on_bytes)
            with tarfile.open(fileobj=stream, mode="r|", bufsize=TAR_BUFSIZE) as tar:
                manifest_raw = _read_members(tar, staging, received, fail)
            stream.finish()
    except tarfile.TarError as e:
        raise fail(f"not a readable tar stream, or truncated ({e})") from None
    except EOFError as e:
        raise fail(f"truncated ({e})") from None
    if manifest_raw is None:
        raise fail(f"truncated or not a vecdb backup (no {MANIFEST_MEMBER})")
    manifest = _json(manifest_raw, MANIFEST_MEMBER, fail)
    _check_format(manifest, MANIFEST_MEMBER, fail)
    _check_members(manifest, received, fail)
    return manifest


def _read_members(tar: tarfile.TarFile, staging: str, received: dict[str, tuple[int, str]],
                  fail: Callable[[str], ArchiveError]) -> bytes | None:
    """Checks the header, extracts the data members; returns the manifest's bytes (None when
    the tar stream ends without one)."""
    header = _small_member(tar, tar.next(), HEADER_MEMBER, MAX_HEADER_BYTES, fail, first=True)
    received[HEADER_MEMBER] = (len(header), hashlib.sha256(header).hexdigest())
    _check_format(_json(header, HEADER_MEMBER, fail), HEADER_MEMBER, fail)
    while True:  # tar.next(), not iteration: that would yield the header again
        info = tar.next()
        if info is None:
            return None
        if info.name == MANIFEST_MEMBER:
            manifest = _small_member(tar, info, MANIFEST_MEMBER, MAX_MANIFEST_BYTES, fail)
            if tar.next() is not None:
                raise fail(f"a member follows {MANIFEST_MEMBER}, which must be last")
            return manifest
        _extract_member(tar, info, staging, received, fail)


def _small_member(tar: tarfile.TarFile, info: tarfile.TarInfo | None, name: str,
                  limit: int, fail: Callable[[str], ArchiveError], first: bool = False) -> bytes:
    if info is None or info.name != name:
        found = "nothing" if info is None else repr(info.name)
        raise fail(f"not a vecdb backup (its first member is {found}, not {name})" if first
                   else f"expected member {name}, found {found}")
    if not info.isreg() or info.size > limit:
        raise fail(f"member {name} is not a regular file of at most {limit} bytes")
    data = tar.extractfile(info).read()
    if len(data) != info.size:
        raise fail(f"truncated (member {name})")
    return data


def _json(raw: bytes, name: str, fail: Callable[[str], ArchiveError]) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise fail(f"member {name} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise fail(f"member {name} is not a JSON object")
    return value


def _check_format(doc: dict[str, Any], name: str, fail: Callable[[str], ArchiveError]) -> None:
    if doc.get("magic") != MAGIC:
        raise fail(f"not a vecdb backup (member {name} has magic {doc.get('magic')!r})")
    version = doc.get("format_version")
    if type(version) is not int or version < 1:
        raise fail(f"member {name} has an unknown backup format version {version!r}")
    if version > FORMAT_VERSION:
        raise fail(f"backup format version {version} is newer than this vecdb supports "
                   f"({FORMAT_VERSION}); upgrade vecdb to restore it")


class _HashingWriter:
    """Hashes and writes the chunks given to ``put`` to fd in a thread of its own (sha256
    and write release the GIL), so that a restore decompresses the next chunk meanwhile."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._sha = hashlib.sha256()
        self._chunks: queue.Queue = queue.Queue(WRITE_AHEAD)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="vecdb-restore-write")
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._chunks.get()
            if chunk is None:
                return
            if self._error is not None:
                continue  # drain after a failure
            try:
                self._sha.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._fd, view):]
            except BaseException as e:  # reported by put / finish
                self._error = e

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._chunks.put(chunk)

    def finish(self) -> str:
        """Waits for every chunk to be written, makes them durable; the sha256 hex digest."""
        self.stop()
        if self._error is not None:
            raise self._error
        os.fsync(self._fd)
        return self._sha.hexdigest()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()


def _extract_member(tar: tarfile.TarFile, info: tarfile.TarInfo, staging: str,
                    received: dict[str, tuple[int, str]],
                    fail: Callable[[str], ArchiveError]) -> None:
    """Writes one data member into staging, hashing it (invariants 2 and 3)."""
    path = info.name
    if not info.isreg():
        raise fail(f"member {path!r} is not a regular file (links and devices are refused)")
    if path == HEADER_MEMBER or not member_path_ok(path):
        raise fail(f"unexpected member {path!r}")
    if path in received:
        raise fail(f"member {path!r} appears twice")
    target = os.path.join(staging, *path.split("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    source = tar.extractfile(info)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    writer = _HashingWriter(fd)
    try:
        size = 0
        while True:
            chunk = source.read(IO_CHUNK)  # decompresses, while the writer hashes and writes
            if not chunk:
                break
            writer.put(chunk)
            size += len(chunk)
        digest = writer.finish()
    finally:
        writer.stop()
        os.close(fd)
    if size != info.size:
        raise fail(f"truncated (member {path!r} holds {size} of {info.size} bytes)")
    received[path] = (size, digest)


def _check_members(manifest: dict[str, Any], received: dict[str, tuple[int, str]],
                   fail: Callable[[str], ArchiveError]) -> None:
    """Every manifest member arrived with its size and sha256; nothing else did."""
    members = manifest.get("members")
    if not isinstance(members, list) or not isinstance(manifest.get("collections"), list):
        raise fail(f"{MANIFEST_MEMBER} lacks its members or collections list")
    listed = {}
    for entry in members:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or \
                type(entry.get("size")) is not int or not isinstance(entry.get("sha256"), str):
            raise fail(f"{MANIFEST_MEMBER} has a malformed member entry {entry!r}")
        listed[entry["path"]] = (entry["size"], entry["sha256"])
    for path, (size, sha) in listed.items():
        got = received.get(path)
        if got is None:
            raise fail(f"member {path!r} listed in the manifest is missing")
        if got[0] != size:
            raise fail(f"member {path!r}: size {got[0]}, the manifest says {size}")
        if got[1] != sha:
            raise fail(f"member {path!r}: sha256 mismatch")
    extra = sorted(set(received) - set(listed))
    if extra:
        raise fail(f"member {extra[0]!r} is not listed in the manifest")
