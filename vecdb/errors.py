"""Exception types of vecdb: one root, ``VecDBError``, and a subclass per kind of misuse.

Every error raised on purpose by vecdb is a ``VecDBError``. Each subclass also inherits the
built-in exception a Python user would reach for (``ValueError``, ``KeyError``, ``TimeoutError``
...), so ``except ValueError`` keeps working. Messages name the offending argument and value.

    >>> import vecdb
    >>> try:
    ...     raise vecdb.DimensionMismatchError("vectors: expected dim 3, got 4")
    ... except ValueError as e:
    ...     print(e)
    vectors: expected dim 3, got 4
"""

from __future__ import annotations


class VecDBError(Exception):
    """Root of every error vecdb raises on purpose."""


class InvalidArgumentError(VecDBError, ValueError):
    """An argument has a bad type or value; the message names it."""


class DimensionMismatchError(InvalidArgumentError):
    """A vector or query has a different dimension than its collection."""


class InvalidVectorError(InvalidArgumentError):
    """A vector holds NaN or infinity, or has zero norm under the cosine metric."""


class InvalidIdError(InvalidArgumentError):
    """An id is neither ``str`` nor ``int``, or is too long / out of range."""


class DuplicateIdError(InvalidArgumentError):
    """The same id appears twice in one batch."""


class IdExistsError(InvalidArgumentError):
    """``add`` of an id the collection already holds (use ``upsert``)."""


class InvalidMetadataError(InvalidArgumentError):
    """A metadata key or value of an unsupported type."""


class FilterError(InvalidArgumentError):
    """A ``where`` / ``where_document`` filter is malformed: unknown operator, wrong value type,
    comparison of a list, empty ``$and``...; the message names the operator, field and value."""


class NotFoundError(VecDBError, KeyError):
    """Something named does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CollectionNotFoundError(NotFoundError):
    """No collection of that name."""


class IdNotFoundError(NotFoundError):
    """An id given to ``update`` is not in the collection."""


class CollectionExistsError(InvalidArgumentError):
    """``create_collection`` of a name that exists."""


class DatabaseNotFoundError(VecDBError, FileNotFoundError):
    """``readonly=True`` open of a directory that holds no database."""


class DatabaseClosedError(VecDBError, RuntimeError):
    """An operation on a closed database or on a collection of one."""


class DatabaseLockedError(VecDBError, TimeoutError):
    """Another writer holds the database and did not let go within ``timeout``."""


class ReadOnlyError(VecDBError, PermissionError):
    """A write through a database opened with ``readonly=True``."""


class CorruptionError(VecDBError, OSError):
    """A file failed its magic, size or checksum test."""


class FormatVersionError(CorruptionError):
    """A file was written by a newer (or unknown) format version."""


class ArchiveError(CorruptionError):
    """A backup archive is not a vecdb backup, or is corrupt or truncated (restore refuses it
    and writes nothing)."""


class NativeError(VecDBError, RuntimeError):
    """The C core reported a failure that is not the caller's fault (out of memory, threads)."""


class NativeMemoryError(NativeError, MemoryError):
    """The C core could not allocate memory."""


__all__ = [name for name, obj in globals().items() if isinstance(obj, type) and issubclass(obj, VecDBError)]
