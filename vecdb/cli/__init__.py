"""The ``vecdb`` command line (console script ``vecdb``, also ``python -m vecdb``).

``main(argv) -> exit code`` is the entry point; app.py builds the parser and reports
errors, the cmd_*.py modules hold the subcommands, inputs.py turns flags into library
arguments, session.py opens databases, output.py writes tables and JSON. Nothing here is
imported by the library below it.

    >>> from vecdb.cli import main
    >>> main(["ls", "./my.vdb"])  # doctest: +SKIP
    0
"""

from .app import main

__all__ = ["main"]
