"""Typed index configurations given to ``create_collection(index=...)``.

    >>> import vecdb
    >>> vecdb.Flat()
    Flat()
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict

from .errors import InvalidArgumentError


@dataclass(frozen=True)
class Flat:
    """Exact search: every query scans every (allowed) row. Always 100% recall."""

    kind = "flat"

    def to_dict(self) -> Dict[str, Any]:
        return {"type": self.kind, **asdict(self)}


IndexConfig = Flat
_KINDS = {Flat.kind: Flat}


def index_from_dict(d: Dict[str, Any]) -> IndexConfig:
    """Rebuilds the config stored in the catalog."""
    params = dict(d)
    kind = params.pop("type", None)
    if kind not in _KINDS:
        raise InvalidArgumentError(f"index: unknown index type {kind!r} in stored config")
    return _KINDS[kind](**params)


def check_index(index: Any) -> IndexConfig:
    if index is None:
        return Flat()
    if not isinstance(index, tuple(_KINDS.values())):
        raise InvalidArgumentError(
            f"index: expected an index config such as vecdb.Flat(), got {index!r}"
        )
    return index
