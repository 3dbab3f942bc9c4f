"""The ``vecdb`` command (also ``python -m vecdb``).

    vecdb demo PATH [--n N] [--dim D]   build a demo database at PATH and search it
    vecdb info PATH                     list the collections of the database at PATH
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="vecdb", description="vecdb, an embedded vector database")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build a demo database at PATH and search it")
    demo.add_argument("path")
    demo.add_argument("--n", type=int, default=5000, help="number of vectors (default 5000)")
    demo.add_argument("--dim", type=int, default=384, help="dimension (default 384)")
    info = sub.add_parser("info", help="list the collections of the database at PATH")
    info.add_argument("path")
    args = parser.parse_args(argv)

    from . import errors
    try:
        if args.command == "demo":
            from .demo import run
            run(args.path, n=args.n, dim=args.dim)
        else:
            from .database import open as open_db
            with open_db(args.path, readonly=True) as db:
                for name in db.list_collections():
                    print(repr(db.get_collection(name)))
    except errors.VecDBError as e:
        print(f"vecdb: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
