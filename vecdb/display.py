"""Tables of hits and records for people and for data tools: the text and HTML reprs of
``Results``, ``Records``, ``Collection`` and ``Database``, and the columns behind
``to_pandas()`` / ``to_arrow()``.

Invariants:
 1. Rendering is cheap whatever the size: at most ``MAX_ROWS`` rows and ``MAX_META_COLUMNS``
    metadata columns are formatted (the rest is counted in a "... N more" line), long cells
    are cut to a fixed number of characters, and nothing here reads the database except
    ``database_summary`` (one LMDB read transaction over the catalog and state tables, no
    collection is opened).
 2. Every user string (ids, metadata keys and values, documents, names, paths) goes
    through ``html.escape`` before it reaches HTML.
 3. pandas and pyarrow are imported only inside ``data_frame`` / ``arrow_table``; a missing
    one raises ImportError naming the extra (``pip install 'vecdb[pandas]'``).

    >>> head, rows = ["id", "document"], [["a", "<b>x</b>"]]
    >>> "&lt;b&gt;" in html_table(head, rows, caption="1 hit")
    True
"""

from __future__ import annotations

import html
import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

MAX_ROWS = 10            # rows a repr shows
MAX_META_COLUMNS = 8     # metadata fields the HTML table shows as columns
TEXT_CELL = 48           # characters of a text-repr cell
HTML_CELL = 60           # characters of an HTML metadata / id cell
HTML_DOCUMENT = 160      # characters of an HTML document cell
TITLE_CHARS = 1000       # characters of the hover text of a cut cell
MAX_COLLECTIONS = 20     # collections a Database repr lists

PANDAS_HINT = "pip install 'vecdb[pandas]' (or pip install pandas)"
ARROW_HINT = "pip install 'vecdb[parquet]' (or pip install pyarrow)"
SIDE_COLUMNS = (("vector_rank", "vector", "rank"), ("vector_distance", "vector", "distance"),
                ("text_rank", "text", "rank"), ("text_score", "text", "score"))
#: column names of the tables; a metadata field of one of these names becomes "metadata.<name>"
RESERVED = frozenset({"query", "id", "distance", "score", "document", "metadata", "vector",
                      *(name for name, _, _ in SIDE_COLUMNS)})


# -- cells -----------------------------------------------------------------------------------

def plain(value: Any) -> str:
    """The text of a cell value: '' for None, str as is, containers and numbers by str()."""
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        return vector_text(value)
    return value if isinstance(value, str) else str(value)


def cut(text: str, limit: int) -> str:
    """text, or its first limit - 1 characters and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def vector_text(vector: Any) -> str:
    """'[0.1200, -0.5000, 0.3300, …] (384)': the first three entries and the length."""
    if vector is None:
        return ""
    v = np.asarray(vector).ravel()
    head = ", ".join(f"{x:.4f}" for x in v[:3].tolist())
    return f"[{head}{', …' if len(v) > 3 else ''}] ({len(v)})"


def metadata_keys(metadatas: Iterable[Optional[Dict[str, Any]]]) -> List[str]:
    """The union of the keys of metadatas, in first-seen order."""
    seen: Dict[str, None] = {}
    for meta in metadatas:
        for key in meta or ():
            seen.setdefault(key, None)
    return list(seen)


# -- text and HTML tables --------------------------------------------------------------------

def text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns, two spaces apart (cells are cut to TEXT_CELL characters)."""
    cells = [list(head)] + [[cut(c, TEXT_CELL) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def _html_cell(text: str, limit: int) -> str:
    shown = cut(text, limit)
    title = "" if shown == text else f" title='{html.escape(cut(text, TITLE_CHARS), quote=True)}'"
    return f"<td{title}>{html.escape(shown)}</td>"


def html_table(head: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str = "",
               footer: str = "", wide: Sequence[str] = ("document",)) -> str:
    """An HTML table; every cell, the head, caption and footer escaped (columns named in wide
    keep HTML_DOCUMENT characters, the others HTML_CELL)."""
    limits = [HTML_DOCUMENT if h in wide else HTML_CELL for h in head]
    th = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(_html_cell(c, lim) for c, lim in zip(r, limits)) + "</tr>"
                   for r in rows)
    cap = f"<caption style='text-align:left'>{html.escape(caption)}</caption>" if caption else ""
    foot = (f"<tfoot><tr><td colspan='{len(head)}'>{html.escape(footer)}</td></tr></tfoot>"
            if footer else "")
    return (f"<table class='vecdb'>{cap}<thead><tr>{th}</tr></thead><tbody>{body}</tbody>"
            f"{foot}</table>")


def more_line(shown: int, total: int, noun: str) -> str:
    """'... 5 more hits (10 of 15 shown)', or '' when everything is shown."""
    return "" if shown >= total else f"… {total - shown:,} more {noun} ({shown} of {total:,} shown)"


def html_fields(fields: Sequence[Tuple[str, str]], *, title: str) -> str:
    """A two-column (field, value) HTML table under a bold title; all escaped."""
    rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in fields)
    return f"<div class='vecdb'><b>{html.escape(title)}</b><table>{rows}</table></div>"


def item_table(fixed: List[Tuple[str, List[str]]], metadatas: List[Any], documents: List[Any],
               vectors: Optional[List[Any]], *,
               html_mode: bool) -> Tuple[List[str], List[List[str]]]:
    """(head, rows) of the shown items: the fixed columns (already text), then, in HTML, the
    document, one column per metadata field (MAX_META_COLUMNS at most, "+N fields" when cut)
    and the vector; in text, a metadata column (the dict) and the document."""
    n = len(documents)
    head = [name for name, _ in fixed]
    columns = [cells for _, cells in fixed]
    if html_mode:
        head.append("document")
        columns.append([plain(d) for d in documents])
        keys = metadata_keys(metadatas)
        for key in keys[:MAX_META_COLUMNS]:
            head.append(key)
            columns.append([plain((m or {}).get(key)) for m in metadatas])
        if len(keys) > MAX_META_COLUMNS:
            head.append(f"+{len(keys) - MAX_META_COLUMNS} fields")
            columns.append([plain({k: v for k, v in (m or {}).items()
                                   if k not in keys[:MAX_META_COLUMNS]} or None)
                            for m in metadatas])
    else:
        head += ["metadata", "document"]
        columns += [[plain(m) for m in metadatas], [plain(d) for d in documents]]
    if vectors is not None and any(v is not None for v in vectors):
        head.append("vector")
        columns.append([vector_text(v) for v in vectors])
    return head, [[col[i] for col in columns] for i in range(n)]


# -- columns for pandas and Arrow ------------------------------------------------------------

def flat_columns(base: Dict[str, List[Any]], metadatas: List[Any], flatten: bool,
                 tail: Dict[str, List[Any]]) -> Dict[str, List[Any]]:
    """base, then the metadata (flatten: one column per field, named after it, or
    "metadata.<field>" when that name is taken; else one "metadata" column of dicts), then
    tail. A missing field is None."""
    out = dict(base)
    if not flatten:
        out["metadata"] = [None if m is None else dict(m) for m in metadatas]
    else:
        for key in metadata_keys(metadatas):
            name = key if key not in RESERVED else f"metadata.{key}"
            while name in out or name in tail:
                name += "_"
            out[name] = [(m or {}).get(key) for m in metadatas]
    out.update(tail)
    return out


def data_frame(columns: Dict[str, List[Any]], caller: str) -> Any:
    """A pandas DataFrame of the columns; an int or bool column with gaps becomes a nullable
    Int64 / boolean column (not float); everything else is pandas' own inference."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(f"{caller} needs pandas: {PANDAS_HINT}") from None
    series = {}
    for name, values in columns.items():
        series[name] = pd.Series(values, dtype=_pandas_dtype(name, values))
    return pd.DataFrame(series)


def _pandas_dtype(name: str, values: List[Any]) -> Any:
    if name == "vector":
        return object
    if not values:
        return "float64" if name in ("distance", "score") else object
    present = [v for v in values if v is not None]
    if present and len(present) < len(values):
        if all(isinstance(v, bool) for v in present):
            return "boolean"
        if all(isinstance(v, int) and not isinstance(v, bool) and -2**63 <= v < 2**63
               for v in present):
            return "Int64"
    return None


def arrow_table(columns: Dict[str, List[Any]], caller: str) -> Any:
    """A pyarrow Table of the columns, each typed by pyarrow; a column whose values share no
    Arrow type (an id or field that is a str in one row and an int in another) holds their
    JSON text instead; vectors of one length become fixed_size_list<float32>."""
    try:
        import pyarrow as pa
    except ImportError:
        raise ImportError(f"{caller} needs pyarrow: {ARROW_HINT}") from None
    fixed_types = {"distance": pa.float64(), "score": pa.float64(), "document": pa.string(),
                   "vector_rank": pa.int64(), "text_rank": pa.int64(), "query": pa.int64(),
                   "vector_distance": pa.float64(), "text_score": pa.float64()}
    arrays = {}
    for name, values in columns.items():
        if name == "vector":
            arrays[name] = _arrow_vectors(pa, values)
            continue
        try:
            arrays[name] = pa.array(values, type=fixed_types.get(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            arrays[name] = pa.array([None if v is None else json.dumps(v) for v in values],
                                    type=pa.string())
    return pa.table(arrays)


def _arrow_vectors(pa: Any, vectors: List[Any]) -> Any:
    lengths = {len(v) for v in vectors if v is not None}
    if len(lengths) == 1 and all(v is not None for v in vectors):
        flat = np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in vectors])
        return pa.FixedSizeListArray.from_arrays(pa.array(flat), lengths.pop())
    return pa.array([None if v is None else np.asarray(v, dtype=np.float32).tolist()
                     for v in vectors], type=pa.list_(pa.float32()))


# -- the database overview -------------------------------------------------------------------

def database_summary(db: Any, limit: int = MAX_COLLECTIONS) -> Tuple[List[Dict[str, Any]], int]:
    """([{name, count, dim, metric, index, quantization, text_index}] of the first limit
    collections by name, the number of collections), from one read transaction over the
    catalog and state tables: no collection is opened, no row is read."""
    from .config import index_from_dict, quantization_from_dict, text_index_from_dict
    from .storage import catalog, keys

    env = db._env
    out = []
    with env.read() as txn:
        names = sorted(catalog.names(txn, env.dbs))
        for name in names[:limit]:
            info = catalog.get(txn, env.dbs, name)
            raw = txn.get(info.prefix, db=env.dbs["state"]) if info else None
            if info is None or raw is None:
                continue
            watermark, tombs = keys.unpack_state(raw)[:2]
            out.append({"name": name, "count": watermark - tombs, "dim": info.dim,
                        "metric": info.metric, "index": index_from_dict(info.index),
                        "quantization": quantization_from_dict(info.index),
                        "text_index": text_index_from_dict(info.index)})
    return out, len(names)
