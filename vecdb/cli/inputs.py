"""Turning command-line values into library arguments: JSON flags, index and quantization
options, query vectors and id lists read from files.

Invariants:
 1. A value that cannot be a valid flag value (JSON that does not parse, an unknown
    quantization spelling, an option of another index type) raises ``UsageError`` naming
    the flag and the value: the command exits with 2 and nothing was changed.
 2. A file that cannot be read or holds the wrong thing raises a ``VecDBError`` or
    ``OSError`` naming the flag and the file: the command exits with 1.
 3. Config objects are built by the library's own classes, whose checks name the field
    (``HNSW.m: expected an int in [2, 256], got 1``).

    >>> json_flag("--where", '{"year": 2024}')
    {'year': 2024}
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

INDEX_TYPES = ("hnsw", "flat", "ivfpq")


class UsageError(Exception):
    """A flag has a value the command cannot use (exit code 2)."""


def json_flag(flag: str, text: str | None) -> Any:
    """The JSON value of a flag (None when the flag was not given)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{flag}: not valid JSON ({e.msg} at char {e.pos}): {text!r}") from None


def json_object_flag(flag: str, text: str | None) -> dict | None:
    """The JSON object of a filter flag such as --where (None when not given)."""
    value = json_flag(flag, text)
    if value is not None and not isinstance(value, dict):
        raise UsageError(f"{flag}: expected a JSON object such as "
                         f'\'{{"year": {{"$gte": 2020}}}}\', got {text!r}')
    return value


def add_collection_options(p: argparse.ArgumentParser, dim_required: bool) -> None:
    """The options that describe a new collection (create, and import into a new one)."""
    g = p.add_argument_group("new collection")
    g.add_argument("--dim", type=int, required=dim_required,
                   help="vector dimension" + ("" if dim_required else
                                              " (default: from the file)"))
    g.add_argument("--metric", choices=("cosine", "ip", "l2"),
                   help="distance (default cosine%s)" % ("" if dim_required else
                                                          ", or the exported file's"))
    g.add_argument("--index", choices=INDEX_TYPES, help="index type (default hnsw)")
    g.add_argument("--M", type=int, dest="hnsw_m", metavar="M",
                   help="hnsw: links per node (default 16)")
    g.add_argument("--ef-construction", type=int, metavar="N",
                   help="hnsw: build candidate list (default 200)")
    g.add_argument("--ef-search", type=int, metavar="N",
                   help="hnsw: default query candidate list (default 64)")
    g.add_argument("--nlist", type=int, metavar="N",
                   help="ivfpq: number of lists (default 1024)")
    g.add_argument("--m", type=int, dest="pq_m", metavar="m",
                   help="ivfpq: sub-quantizers, bytes per vector (default 16)")
    g.add_argument("--default-nprobe", type=int, dest="default_nprobe", metavar="N",
                   help="ivfpq: lists a query scans by default")
    g.add_argument("--quantization", metavar="sq8|pq:M",
                   help="hnsw: traverse compressed codes (sq8, or pq:M with M dividing dim)")
    g.add_argument("--no-text-index", action="store_true",
                   help="keep no BM25 index of the documents")
    g.add_argument("--stopwords", choices=("english",), help="BM25: leave out common words")


_HNSW_FLAGS = (("hnsw_m", "--M", "m"), ("ef_construction", "--ef-construction",
                                         "ef_construction"),
               ("ef_search", "--ef-search", "ef_search"))
_IVF_FLAGS = (("nlist", "--nlist", "nlist"), ("pq_m", "--m", "m"),
              ("default_nprobe", "--default-nprobe", "nprobe"))


def collection_options_given(args: argparse.Namespace) -> list[str]:
    """The flags of add_collection_options the user gave."""
    given = [flag for attr, flag, _ in _HNSW_FLAGS + _IVF_FLAGS
             if getattr(args, attr, None) is not None]
    for attr, flag in (("dim", "--dim"), ("metric", "--metric"), ("index", "--index"),
                       ("quantization", "--quantization"), ("stopwords", "--stopwords")):
        if getattr(args, attr, None) is not None:
            given.append(flag)
    if getattr(args, "no_text_index", False):
        given.append("--no-text-index")
    return given


def index_config(args: argparse.Namespace) -> Any:
    """The vecdb.HNSW / IVFPQ / Flat of the options (None: the library default, HNSW())."""
    from ..config import HNSW, IVFPQ, Flat

    kind = args.index or "hnsw"
    own = {"hnsw": _HNSW_FLAGS, "ivfpq": _IVF_FLAGS, "flat": ()}[kind]
    for attr, flag, _ in _HNSW_FLAGS + _IVF_FLAGS:
        if getattr(args, attr) is not None and all(attr != a for a, _, _ in own):
            raise UsageError(f"{flag}: does not apply to --index {kind} "
                             f"(got {flag} {getattr(args, attr)})")
    params = {name: getattr(args, attr) for attr, _, name in own
              if getattr(args, attr) is not None}
    if kind == "flat":
        return Flat()
    if kind == "ivfpq":
        return IVFPQ(**params)
    return HNSW(**params) if params or args.index else None


def precheck_collection(name: str, dim: Any, index: Any, quant: Any) -> None:
    """Runs the library's own checks of a new collection's settings (those create_collection
    makes) before a database is opened, so a bad one does not leave an empty database
    directory behind (invariant 2 of cmd_data.py)."""
    from .. import validate
    from ..config import HNSW, IVFPQ, check_pq_m, check_quantization

    validate.name(name)
    if dim is None:
        return
    dim = validate.dim(dim)
    index = HNSW() if index is None else index
    check_quantization(quant, index, dim)
    if isinstance(index, IVFPQ):
        check_pq_m(index.m, dim, "index")


def quantization_config(spec: str | None) -> Any:
    """vecdb.SQ8() for "sq8", vecdb.PQ(m=M) for "pq:M", None for None."""
    if spec is None:
        return None
    from ..config import PQ, SQ8

    text = spec.strip().lower()
    if text == "sq8":
        return SQ8()
    if text.startswith("pq:") and text[3:].isdigit():
        return PQ(m=int(text[3:]))
    raise UsageError(f"--quantization: expected sq8 or pq:M (e.g. pq:16), got {spec!r}")


def text_index_config(args: argparse.Namespace) -> Any:
    """True, False or vecdb.BM25(stopwords=...) from --no-text-index / --stopwords."""
    if args.no_text_index:
        if args.stopwords:
            raise UsageError("--stopwords: has no effect with --no-text-index")
        return False
    if args.stopwords:
        from ..config import BM25
        return BM25(stopwords=args.stopwords)
    return True


def fusion_config(spec: str | None) -> Any:
    """vecdb.RRF() for "rrf" or "rrf:K", vecdb.Weighted(alpha) for "weighted:ALPHA"."""
    if spec is None:
        return None
    from ..config import RRF, Weighted

    name, _, value = spec.strip().lower().partition(":")
    try:
        if name == "rrf":
            return RRF(k=int(value)) if value else RRF()
        if name == "weighted":
            return Weighted(alpha=float(value)) if value else Weighted()
    except ValueError:
        pass
    raise UsageError(f"--fusion: expected rrf, rrf:K, weighted or weighted:ALPHA, got {spec!r}")


def query_vectors(vector: str | None, vector_file: str | None) -> Any:
    """The query vector(s) of --vector JSON or --vector-file (.npy or .json), as a numpy
    array ([dim] or [nq, dim]); None when neither was given."""
    import numpy as np

    if vector is not None:
        value = json_flag("--vector", vector)
        flag, where = "--vector", repr(vector)
    elif vector_file is not None:
        value = _read_array_file("--vector-file", vector_file)
        flag, where = "--vector-file", repr(vector_file)
    else:
        return None
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim not in (1, 2) or array.size == 0:
        from ..errors import InvalidArgumentError
        raise InvalidArgumentError(f"{flag}: expected a vector (a list of numbers) or a list "
                                   f"of vectors, got {where}")
    return array


def _read_array_file(flag: str, path: str) -> Any:
    """The contents of a .npy or .json file (an array or a JSON value)."""
    from ..errors import InvalidArgumentError

    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".npy", ".json"):
        raise InvalidArgumentError(f"{flag}: expected a .npy or .json file, got {path!r}")
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"{flag}: no such file {path!r}")
    if suffix == ".npy":
        import numpy as np
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as e:
            raise InvalidArgumentError(f"{flag}: {path!r} is not a numeric .npy file "
                                       f"({e})") from None
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise InvalidArgumentError(f"{flag}: {path!r} is not valid JSON ({e})") from None


def ids_from_file(path: str | None) -> list[Any] | None:
    """The ids of --ids-file: a .npy of integers, a .json list, or a text file with one id
    per line (kept as strings); None when not given."""
    if path is None:
        return None
    from ..errors import InvalidArgumentError

    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".npy", ".json"):
        value = _read_array_file("--ids-file", path)
        ids = value.tolist() if hasattr(value, "tolist") else value
        if not isinstance(ids, list):
            raise InvalidArgumentError(f"--ids-file: expected a list of ids in {path!r}, got "
                                       f"{type(ids).__name__}")
        return ids
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"--ids-file: no such file {path!r}")
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]
