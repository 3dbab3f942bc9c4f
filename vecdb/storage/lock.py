"""The single-writer lock of a database directory: an ``flock`` on the file ``LOCK``.

``flock`` (not ``fcntl``/POSIX locks) is used on purpose: it belongs to the open file
description, so two opens in the *same* process conflict as well as opens in two processes,
and the kernel drops it when the holder dies (a SIGKILLed writer never leaves a stale lock).

Invariant: while a ``WriterLock`` is held, no other writer can hold one on the same directory.
"""

from __future__ import annotations

import fcntl
import os
import time

from ..errors import DatabaseLockedError

LOCK_FILE = "LOCK"
_POLL_SECONDS = 0.01


class WriterLock:
    """Exclusive writer lock on ``<directory>/LOCK``, taken within ``timeout`` seconds.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> lock = WriterLock.acquire(d, timeout=0.0)
    >>> lock.release()
    """

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def acquire(cls, directory: str, timeout: float) -> "WriterLock":
        path = os.path.join(directory, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return cls(fd, path)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DatabaseLockedError(
                        f"database {directory!r} is locked by another writer "
                        f"(waited timeout={timeout} s); open it with readonly=True to read"
                    ) from None
                time.sleep(_POLL_SECONDS)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1
