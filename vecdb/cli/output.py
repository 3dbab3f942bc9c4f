"""What the ``vecdb`` command writes: aligned plain-text tables and numbers for people, one
JSON document for scripts (progress bars go to stderr through vecdb/io/progress.py).

Invariants:
 1. With ``--json`` stdout receives exactly one JSON document (``emit_json``) and nothing
    else; human text and progress go elsewhere or nowhere.
 2. Progress bars are asked for only when neither ``--quiet`` nor ``--json`` was given
    (``session.progress``), and drawn only on a terminal, so piped output and logs stay clean.
 3. This module imports nothing heavy (no numpy, no C core): ``vecdb --help`` stays fast.

    >>> print(table(["name", "rows"], [["docs", 1234567], ["a", 5]]))
    name       rows
    ----  ---------
    docs  1,234,567
    a             5
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def fmt_number(value: Any, digits: int = 2) -> str:
    """Ints with thousands separators, floats rounded, None as "-".

    >>> fmt_number(20000), fmt_number(3.14159), fmt_number(None)
    ('20,000', '3.14', '-')
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        return f"{int(value):,}"
    if isinstance(value, float) or hasattr(value, "dtype"):
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:,.{digits}f}"
    return str(value)


def fmt_bytes(n: int | None) -> str:
    """A byte count in binary units.

    >>> fmt_bytes(512), fmt_bytes(3 * 1024 * 1024)
    ('512 B', '3.0 MiB')
    """
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def shorten(text: Any, limit: int = 60) -> str:
    """One line of at most limit characters (a trailing "…" marks a cut)."""
    s = "" if text is None else str(text)
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "") -> str:
    """An aligned text table: numbers right-aligned (with separators), text left-aligned."""
    cells: list[list[str]] = [[fmt_number(v) if not isinstance(v, str) else v for v in row]
                              for row in rows]
    numeric = [bool(rows) and all(_is_number(row[c]) for row in rows if row[c] is not None)
               for c in range(len(headers))]
    widths = [max([len(h)] + [len(r[c]) for r in cells]) for c, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w)
                 for v, w, num in zip(values, widths, numeric)]
        return (indent + "  ".join(parts)).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(r) for r in cells)
    return "\n".join(out)


_NUMERIC_TEXT = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?( ?[KMGT]?i?B| s| ms|x|%)?$")


def _is_number(value: Any) -> bool:
    """Numbers, and text that shows one (a formatted figure), align right."""
    if isinstance(value, str):
        return bool(_NUMERIC_TEXT.match(value))
    return not isinstance(value, bool) and (
        isinstance(value, (int, float)) or hasattr(value, "dtype"))


def pairs(items: Sequence[Sequence[Any]], indent: str = "") -> str:
    """Aligned "key  value" lines.

    >>> print(pairs([("path", "/tmp/x"), ("collections", 3)]))
    path         /tmp/x
    collections  3
    """
    width = max((len(str(k)) for k, _ in items), default=0)
    return "\n".join(f"{indent}{str(k).ljust(width)}  {v if isinstance(v, str) else fmt_number(v)}"
                     for k, v in items)


def _json_default(obj: Any) -> Any:
    """Plain values for what json cannot write: numpy scalars and arrays, paths, configs."""
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict
        return asdict(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if isinstance(obj, bytes):
        return obj.hex()
    if hasattr(obj, "__fspath__"):
        return str(obj.__fspath__())
    return str(obj)


def to_json(obj: Any) -> str:
    """obj as JSON text (numpy types and configs made plain)."""
    return json.dumps(obj, default=_json_default, ensure_ascii=False)


def emit_json(obj: Any, out: TextIO | None = None) -> None:
    """Writes obj as the one JSON document of this run to stdout."""
    stream = out or sys.stdout
    stream.write(to_json(obj) + "\n")
    stream.flush()


def emit(text: str, out: TextIO | None = None) -> None:
    """Writes human text to stdout."""
    print(text, file=out or sys.stdout)
