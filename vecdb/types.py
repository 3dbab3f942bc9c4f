"""Type aliases of the public API, in one place."""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Union

Metric = Literal["cosine", "ip", "l2"]
Durability = Literal["full", "normal", "off"]
IncludeField = Literal["metadata", "document", "vector"]
Id = Union[str, int]
Scalar = Union[str, int, float, bool, None]
MetadataValue = Union[Scalar, List[Scalar]]
Metadata = Dict[str, MetadataValue]
Where = Dict[str, Any]          # the where-language: query/filters.py
WhereDocument = Dict[str, Any]

METRICS = ("cosine", "ip", "l2")
DURABILITIES = ("full", "normal", "off")
INCLUDE_FIELDS = ("metadata", "document", "vector")
DEFAULT_INCLUDE = ("metadata", "document")

__all__ = ["Metric", "Durability", "IncludeField", "Id", "Scalar", "MetadataValue", "Metadata", "Where",
           "WhereDocument"]
