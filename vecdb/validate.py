"""Validation of user input to collection calls: explicit checks, clear errors, no writes.

Every function here either returns the input in canonical form (lists of plain Python values,
float32 C-contiguous arrays) or raises a ``VecDBError`` subclass naming the argument, the
position and the value. Nothing here touches storage.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from .errors import (DimensionMismatchError, DuplicateIdError, InvalidArgumentError,
                     InvalidIdError, InvalidMetadataError, InvalidVectorError)
from .storage import keys
from .types import DEFAULT_INCLUDE, INCLUDE_FIELDS

_SCALARS = (str, int, float, bool, type(None))
_INCLUDE_ALIASES = {"metadatas": "metadata", "documents": "document", "vectors": "vector",
                    "embeddings": "vector", "embedding": "vector"}


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_list(value: Any, name: str) -> list:
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise InvalidArgumentError(f"{name}: expected a 1-d sequence, got shape {value.shape}")
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    raise InvalidArgumentError(
        f"{name}: expected a list, got {type(value).__name__} {_short(value)}"
    )


def _int64(value: Any, where: str, error: type, what: str) -> int:
    """int(value), which must fit a signed 64-bit integer (else error naming where)."""
    value = int(value)
    if not keys.INT_ID_MIN <= value <= keys.INT_ID_MAX:
        raise error(f"{where}: {what} {value} is outside the signed 64-bit range")
    return value


def check_id(value: Any, where: str) -> "int | str":
    kind = type(value)
    if kind is str and len(value) <= keys.MAX_STR_ID_BYTES // 4:  # fast path: surely short
        return value
    if kind is int and keys.INT_ID_MIN <= value <= keys.INT_ID_MAX:
        return value
    if isinstance(value, (bool, np.bool_)):
        raise InvalidIdError(f"{where}: ids must be str or int, got bool {value!r}")
    if isinstance(value, str):
        if len(value.encode("utf-8")) > keys.MAX_STR_ID_BYTES:
            raise InvalidIdError(
                f"{where}: str id longer than {keys.MAX_STR_ID_BYTES} UTF-8 bytes: {_short(value)}"
            )
        return value
    if isinstance(value, numbers.Integral):
        return _int64(value, where, InvalidIdError, "int id")
    raise InvalidIdError(
        f"{where}: ids must be str or int, got {type(value).__name__} {_short(value)}"
    )


def ids(value: Any, *, allow_empty: bool = False) -> list:
    """A list of distinct str/int ids."""
    if value is None:
        raise InvalidArgumentError("ids: required, got None")
    if isinstance(value, (str, int)):
        raise InvalidArgumentError(
            f"ids: expected a list of ids, got a single {type(value).__name__} {_short(value)}; "
            f"wrap it in a list"
        )
    items = [check_id(v, f"ids[{i}]") for i, v in enumerate(_as_list(value, "ids"))]
    if not items and not allow_empty:
        raise InvalidArgumentError("ids: empty batch (at least one id is required)")
    if len(set(items)) != len(items):
        seen: set = set()
        for i, v in enumerate(items):
            if v in seen:
                raise DuplicateIdError(f"ids[{i}]: duplicate id {v!r} in the batch")
            seen.add(v)
    return items


UNIT_NORM_TOLERANCE = 1e-6


def vectors(value: Any, n: int, dim: int, *, normalize: bool, name: str = "vectors") -> np.ndarray:
    """float32 C-contiguous [n, dim], finite; unit-normalized when normalize (cosine).

    Normalizing is idempotent: rows already of unit length (within UNIT_NORM_TOLERANCE, far
    below what a cosine distance resolves) are kept bit for bit, so stored rows that go
    out (get, export) and back in (add, import) are unchanged."""
    if value is None:
        raise InvalidArgumentError(f"{name}: required, got None")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(f"{name}: not an array of numbers ({e})") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidArgumentError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating) or arr.dtype == np.bool_:
        raise InvalidArgumentError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1 and n == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidArgumentError(f"{name}: expected a 2-d array [n, dim], got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"{name}: expected dimension {dim}, got {arr.shape[1]} (shape {arr.shape})"
        )
    if arr.shape[0] != n:
        raise InvalidArgumentError(f"{name}: got {arr.shape[0]} vectors for {n} ids")
    out = np.ascontiguousarray(arr, dtype=np.float32)  # may be the caller's: never modified
    if not np.isfinite(out).all():
        i = int(np.argmin(np.isfinite(out).all(axis=1)))
        raise InvalidVectorError(f"{name}[{i}]: contains NaN or infinity")
    if normalize:
        norms = np.sqrt(np.einsum("ij,ij->i", out, out))
        if not (norms > 0).all():
            i = int(np.argmin(norms > 0))
            raise InvalidVectorError(f"{name}[{i}]: zero vector has no direction under cosine")
        off = np.abs(norms - 1.0) > UNIT_NORM_TOLERANCE
        if off.any():
            out = out / np.where(off, norms, np.float32(1.0))[:, None]
    return out


_PLAIN = (str, bool, type(None))


def _metadata_value(v: Any, where: str, in_list: bool = False) -> Any:
    kind = type(v)
    if kind in _PLAIN:  # fast paths for the common exact types
        return v
    if kind is int and keys.INT_ID_MIN <= v <= keys.INT_ID_MAX:
        return v
    if kind is float and math.isfinite(v):
        return v
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str) or v is None:
        return v
    if isinstance(v, numbers.Integral):
        return _int64(v, where, InvalidMetadataError, "int")
    if isinstance(v, numbers.Real):
        v = float(v)
        if not math.isfinite(v):
            raise InvalidMetadataError(f"{where}: float must be finite, got {v!r}")
        return v
    if isinstance(v, (list, tuple)) and not in_list:
        return [_metadata_value(x, f"{where}[{j}]", in_list=True) for j, x in enumerate(v)]
    allowed = "str, int, float, bool, None" + ("" if in_list else " or a list of those")
    raise InvalidMetadataError(
        f"{where}: unsupported value type {type(v).__name__} {_short(v)}; allowed: {allowed}"
    )


def metadata(value: Any, where: str) -> Optional[dict]:
    if value is None:
        return None
    if type(value) is dict:  # fast path: plain keys and values need no conversion
        for key, v in value.items():
            kind = type(v)
            if (type(key) is not str or not key or key[0] == "$" or not (
                    kind in _PLAIN or (kind is int and keys.INT_ID_MIN <= v <= keys.INT_ID_MAX)
                    or (kind is float and math.isfinite(v)))):
                break
        else:
            return value
    if not isinstance(value, dict):
        raise InvalidMetadataError(
            f"{where}: expected a dict or None, got {type(value).__name__} {_short(value)}"
        )
    out = {}
    for key, v in value.items():
        if type(key) is not str:
            raise InvalidMetadataError(f"{where}: keys must be str, got {_short(key)}")
        if not key or key[0] == "$":
            raise InvalidMetadataError(
                f"{where}: key {key!r} is not allowed (empty, or starts with '$')"
            )
        out[key] = _metadata_value(v, f"{where}[{key!r}]")
    return out


def metadatas(value: Any, n: int) -> List[Optional[dict]]:
    if value is None:
        return [None] * n
    items = _as_list(value, "metadatas")
    if len(items) != n:
        raise InvalidArgumentError(f"metadatas: got {len(items)} entries for {n} ids")
    return [metadata(m, f"metadatas[{i}]") for i, m in enumerate(items)]


def documents(value: Any, n: int) -> List[Optional[str]]:
    if value is None:
        return [None] * n
    items = _as_list(value, "documents")
    if len(items) != n:
        raise InvalidArgumentError(f"documents: got {len(items)} entries for {n} ids")
    for i, d in enumerate(items):
        if d is not None and not isinstance(d, str):
            raise InvalidArgumentError(
                f"documents[{i}]: expected str or None, got {type(d).__name__} {_short(d)}"
            )
    return items


def texts(value: Any) -> Tuple[List[str], bool]:
    """([text, ...], was_single) for a keyword query (a str) or a batch of them."""
    if isinstance(value, str):
        return [value], True
    items = _as_list(value, "text")
    if not items:
        raise InvalidArgumentError("text: empty batch of text queries")
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InvalidArgumentError(f"text[{i}]: expected str, got {type(t).__name__} "
                                       f"{_short(t)}")
    return items, False


_FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def queries(value: Any, dim: int, *, normalize: bool) -> Tuple[np.ndarray, bool]:
    """(float32 [nq, dim], was_1d) for a query vector or a batch of them."""
    if type(value) is np.ndarray and value.shape == (dim,) and value.dtype in _FAST_DTYPES:
        # fast path for one float vector: three numpy calls (a query pays for each)
        q = np.array(value, dtype=np.float32, ndmin=2)
        norm2 = float(np.dot(q[0], q[0]))  # finite iff every value is (barring overflow)
        if not math.isfinite(norm2) and not np.isfinite(q).all():
            raise InvalidVectorError("query[0]: contains NaN or infinity")
        if normalize:
            if not norm2 > 0 or not math.isfinite(norm2):
                norm2 = float(np.dot(q[0].astype(np.float64), q[0].astype(np.float64)))
            if not norm2 > 0:
                raise InvalidVectorError("query[0]: zero vector has no direction under cosine")
            q *= 1.0 / math.sqrt(norm2)
        return q, True
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise InvalidArgumentError(f"query: not an array of numbers ({e})") from None
    if arr.ndim not in (1, 2):
        raise InvalidArgumentError(f"query: expected [dim] or [nq, dim], got shape {arr.shape}")
    single = arr.ndim == 1
    n = 1 if single else arr.shape[0]
    if n == 0:
        raise InvalidArgumentError("query: empty batch of queries")
    return vectors(arr, n, dim, normalize=normalize, name="query"), single


def positive_int(value: Any, name: str) -> int:
    if type(value) is int and value >= 1:  # fast path
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidArgumentError(f"{name}: expected an int >= 1, got {_short(value)}")
    return int(value)


def k(value: Any) -> int:
    return positive_int(value, "k")


def include(value: Any) -> Tuple[str, ...]:
    if type(value) is tuple and (value == () or value == DEFAULT_INCLUDE):  # common, valid
        return value
    if isinstance(value, str):
        value = (value,)
    items = _as_list(value, "include")
    for item in items:
        if item not in INCLUDE_FIELDS:
            hint = _INCLUDE_ALIASES.get(item) if isinstance(item, str) else None
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise InvalidArgumentError(
                f"include: unknown field {_short(item)}{extra}; choose from {INCLUDE_FIELDS}"
            )
    return tuple(items)


def name(value: Any) -> str:
    """A collection name: 1-200 characters, no control characters."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"name: expected str, got {type(value).__name__} {_short(value)}")
    if not 1 <= len(value) <= 200 or any(ord(c) < 32 for c in value):
        raise InvalidArgumentError(
            f"name: must be 1-200 characters without control characters, got {_short(value)}"
        )
    return value


def dim(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= 65536:
        raise InvalidArgumentError(f"dim: expected an int in [1, 65536], got {_short(value)}")
    return int(value)


def non_negative_int(value: Any, name: str, allow_none: bool = False) -> Optional[int]:
    if type(value) is int and value >= 0:  # fast path
        return value
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidArgumentError(f"{name}: expected an int >= 0, got {_short(value)}")
    return int(value)


def choice(value: Any, name: str, options: Sequence[str]) -> str:
    if value not in options:
        raise InvalidArgumentError(f"{name}: expected one of {tuple(options)}, got {_short(value)}")
    return value
