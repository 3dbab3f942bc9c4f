"""Progress reporting of long operations (import, export, backup, restore, check, vacuum).

Every long operation takes ``progress=``:
  - False (the default): silent;
  - True: a tqdm bar on stderr when tqdm is installed and stderr is a terminal, else silent
    (tqdm is optional: ``pip install tqdm``);
  - a callable ``fn(done, total)``: called as work advances (total may be None when unknown).

    >>> seen = []
    >>> with progress_bar(lambda done, total: seen.append((done, total)), 10, "rows") as bar:
    ...     bar.update(4); bar.update(6)
    >>> seen
    [(4, 10), (10, 10)]
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional, Union

from ..errors import InvalidArgumentError

ProgressArg = Union[bool, Callable[[int, Optional[int]], Any]]


def check_progress(progress: Any) -> ProgressArg:
    """The progress argument, or InvalidArgumentError naming it."""
    if isinstance(progress, bool) or callable(progress):
        return progress
    raise InvalidArgumentError(
        f"progress: expected True, False or a callable fn(done, total), got {progress!r}")


class Progress:
    """A context manager counting work done; see the module docstring for what it reports to."""

    def __init__(self, progress: ProgressArg, total: Optional[int], desc: str,
                 unit: str = "it") -> None:
        self.done = 0
        self.total = total
        self._callback: Optional[Callable[[int, Optional[int]], Any]] = None
        self._bar: Any = None
        if callable(progress) and not isinstance(progress, bool):
            self._callback = progress
        elif progress and sys.stderr is not None and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            scale = unit == "B"
            self._bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=scale,
                             unit_divisor=1024 if scale else 1000, leave=False,
                             dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        if self._callback is not None:
            self._callback(self.done, self.total)

    def set_total(self, total: Optional[int]) -> None:
        """The amount of work, once it is known (after the bar started)."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(progress: ProgressArg, total: Optional[int], desc: str,
                 unit: str = "it") -> Progress:
    """A Progress for one long operation (``with progress_bar(p, n, "import") as bar``)."""
    return Progress(check_progress(progress), total, desc, unit)
