"""The ``vecdb`` command: the argument parser, the dispatch to a subcommand and the one place
that turns exceptions into exit codes.

Exit codes: 0 ok; 1 error (a VecDBError, an OSError, a missing optional package, or
``check`` finding problems); 2 usage (a bad flag or a flag value that cannot be used);
130 interrupted.

Invariants:
 1. An error is one line on stderr, ``vecdb: error: <message>``; the traceback only with
    ``--debug``. Nothing of a failed command's output is half-written as JSON on stdout.
 2. The global flags ``--json``, ``--debug``, ``--quiet`` are accepted before or after the
    subcommand (the subparsers take them with SUPPRESSed defaults, so a flag given before
    the subcommand is not reset by the subparser).
 3. Nothing heavy is imported before a subcommand runs: the subcommand modules (and through
    them numpy and the library) load only when dispatched.

    >>> main(["--json", "ls", "/nonexistent/dir"])  # doctest: +SKIP
    1
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from .inputs import UsageError, add_collection_options

# subcommand -> (module in this package, function)
COMMANDS = {
    "info": ("cmd_db", "run_info"), "ls": ("cmd_db", "run_ls"),
    "create": ("cmd_db", "run_create"), "vacuum": ("cmd_db", "run_vacuum"),
    "check": ("cmd_db", "run_check"), "import": ("cmd_data", "run_import"),
    "export": ("cmd_data", "run_export"), "query": ("cmd_data", "run_query"),
    "backup": ("cmd_ops", "run_backup"), "restore": ("cmd_ops", "run_restore"),
    "demo": ("cmd_ops", "run_demo"), "bench": ("cmd_ops", "run_bench"),
}


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _global_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else False
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", default=default,
                   help="write one JSON document to stdout (for scripts)")
    g.add_argument("--quiet", "-q", action="store_true", default=default,
                   help="no progress bars")
    g.add_argument("--debug", action="store_true", default=default,
                   help="show the traceback of an error")


def _timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=non_negative_float, default=10.0, metavar="SECONDS",
                   help="wait this long for another writer to let go (default 10)")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--where", metavar="JSON",
                   help='metadata filter, e.g. \'{"year": {"$gte": 2020}}\'')
    p.add_argument("--where-document", metavar="JSON",
                   help='document filter, e.g. \'{"$contains": "tokio"}\'')


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="vecdb", description="vecdb, an embedded vector database: inspect, load, "
        "query, back up and check a database directory.",
        epilog="exit codes: 0 ok, 1 error (or problems found by check), 2 usage")
    _global_flags(parser, suppress=False)
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"vecdb {__version__}")
    flags = argparse.ArgumentParser(add_help=False)
    _global_flags(flags, suppress=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[flags])

    p = add("info", "describe the database at DIR and its collections")
    p.add_argument("path", metavar="DIR", help="database directory")
    p = add("ls", "list the collections of the database at DIR")
    p.add_argument("path", metavar="DIR", help="database directory")

    p = add("create", "create a collection (and the database, if DIR holds none)")
    p.add_argument("path", metavar="DIR", help="database directory")
    p.add_argument("name", metavar="NAME", help="collection")
    add_collection_options(p, dim_required=True)
    _timeout(p)

    p = add("import", "load a JSONL, Parquet or .npy file into a collection (created when "
            "missing)")
    p.add_argument("path", metavar="DIR", help="database directory")
    p.add_argument("name", metavar="NAME", help="collection")
    p.add_argument("file", metavar="FILE", help="the file to load")
    p.add_argument("--format", help="jsonl, parquet or npy (default: from the suffix)")
    p.add_argument("--upsert", action="store_true", help="replace items whose id exists")
    p.add_argument("--ids-file", metavar="F",
                   help="ids of a .npy import: .npy of ints, .json list, or one id per line")
    p.add_argument("--batch-size", type=positive_int, default=10_000, metavar="N",
                   help="items per batch (default 10000)")
    add_collection_options(p, dim_required=False)
    _timeout(p)

    p = add("query", "search a collection by vector, by text (BM25) or both (hybrid)")
    p.add_argument("path", metavar="DIR", help="database directory")
    p.add_argument("name", metavar="NAME", help="collection")
    vec = p.add_mutually_exclusive_group()
    vec.add_argument("--vector-file", metavar="F",
                     help=".npy or .json holding one query vector or one per row")
    vec.add_argument("--vector", metavar="JSON", help="a query vector, e.g. '[0.1, 0.2]'")
    p.add_argument("--text", metavar="T", help="keyword query; with a vector: hybrid")
    _filters(p)
    p.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument("--include", default="metadata,document", metavar="FIELDS",
                   help="comma-separated: metadata, document, vector (default "
                   "metadata,document; '' for none)")
    p.add_argument("--ef", type=int, help="HNSW candidate list")
    p.add_argument("--nprobe", type=int, help="IVF-PQ lists to scan")
    p.add_argument("--rescore", type=int, help="quantized: candidates = k * rescore")
    p.add_argument("--fusion", metavar="SPEC", help="hybrid: rrf, rrf:K, weighted:ALPHA")
    p.add_argument("--explain", action="store_true", help="report the plan")

    p = add("export", "write a collection's items to a JSONL, Parquet or .npy file")
    p.add_argument("path", metavar="DIR", help="database directory")
    p.add_argument("name", metavar="NAME", help="collection")
    p.add_argument("file", metavar="FILE", help="the file to write")
    p.add_argument("--format", help="jsonl, parquet or npy (default: from the suffix)")
    _filters(p)
    p.add_argument("--batch-size", type=positive_int, default=10_000, metavar="N",
                   help="items per batch (default 10000)")

    p = add("backup", "write a consistent snapshot of DIR to ARCHIVE (.vdb.tar.zst)")
    p.add_argument("path", metavar="DIR", help="database directory")
    p.add_argument("archive", metavar="ARCHIVE", help="the archive to write")
    p.add_argument("--level", type=int, default=3, help="zstandard level 1-22 (default 3)")

    p = add("restore", "restore ARCHIVE into the new directory DIR")
    p.add_argument("archive", metavar="ARCHIVE", help="an archive written by backup")
    p.add_argument("path", metavar="DIR", help="the new database directory")

    p = add("check", "verify the database at DIR (exit 1 when problems remain)")
    p.add_argument("path", metavar="DIR", help="database directory")
    p.add_argument("--repair", action="store_true", help="rebuild what is derived")
    _timeout(p)

    p = add("vacuum", "compact collections, dropping deleted rows (all by default)")
    p.add_argument("path", metavar="DIR", help="database directory")
    p.add_argument("names", metavar="NAME", nargs="*", help="collections (default: all)")
    _timeout(p)

    p = add("demo", "build a demo database at DIR and search it")
    p.add_argument("path", metavar="DIR", help="database directory")
    p.add_argument("--n", type=positive_int, default=5000, help="vectors (default 5000)")
    p.add_argument("--dim", type=positive_int, default=384, help="dimension (default 384)")

    p = add("bench", "a quick self-check: add rate, query latency and recall vs numpy")
    p.add_argument("--n", type=positive_int, default=20_000, help="vectors (default 20000)")
    p.add_argument("--dim", type=positive_int, default=128, help="dimension (default 128)")
    p.add_argument("--k", type=positive_int, default=10, help="neighbours (default 10)")
    p.add_argument("--queries", type=positive_int, default=200,
                   help="query vectors (default 200)")
    p.add_argument("--metric", choices=("cosine", "ip", "l2"), default="cosine")
    p.add_argument("--seed", type=int, default=0)
    return parser


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text


def _report(args: argparse.Namespace, e: BaseException, prefix: str = "error") -> None:
    if getattr(args, "debug", False):
        traceback.print_exc(file=sys.stderr)
    print(f"vecdb: {prefix}: {_one_line(e)}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Runs the ``vecdb`` command with argv (default: sys.argv[1:]); returns the exit code.

    >>> main(["--version"])  # doctest: +SKIP
    vecdb 0.1.0
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (argparse printed it)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    from ..errors import VecDBError

    module, function = COMMANDS[args.command]
    try:
        handler = getattr(importlib.import_module(f".{module}", __package__), function)
        return handler(args)
    except UsageError as e:
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        print(f"vecdb {args.command}: error: {_one_line(e)}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("vecdb: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except (VecDBError, OSError) as e:
        _report(args, e)
        return 1
    except ImportError as e:  # an optional package (pyarrow, ...) a format needs
        _report(args, e)
        return 1
    except Exception as e:  # noqa: BLE001 - a bug: one line still, the traceback with --debug
        if args.debug:
            traceback.print_exc(file=sys.stderr)
        print(f"vecdb: internal error: {type(e).__name__}: {_one_line(e)} (run with --debug "
              f"for the traceback)", file=sys.stderr, flush=True)
        return 1
