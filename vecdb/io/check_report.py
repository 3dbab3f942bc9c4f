"""What ``db.check()`` returns: the problems found (and repaired), and a summary per collection.

A ``Problem`` names the collection (None for the database as a whole), the component it was
found in ("catalog", "state", "ids", "rows", "tombstones", "edits", "segments", "id_column",
"graph", "codes", "ivfpq", "filters", "postings", "files"), a message that says which row,
id, file or offset, whether repair=True can fix it from the data that is not derived, and
whether it was fixed. A ``CheckReport`` is ok when no problem is left unrepaired.

Invariants:
 1. Findings of one kind are capped (``Findings``): past MAX_PER_GROUP, a single problem says
    how many more there are, so a report stays readable whatever the damage.
 2. ``to_dict()`` holds only JSON types (``vecdb check --json``); ``str()`` is the human table.

    >>> r = CheckReport("/tmp/x.vdb", [Problem("docs", "graph", "hnsw.graph: bad", True)], [])
    >>> r.ok, r.to_dict()["problems"][0]["component"]
    (False, 'graph')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_PER_GROUP = 10  # problems reported one by one per (collection, component, kind)


@dataclass
class Problem:
    """One thing found wrong."""

    collection: str | None
    component: str
    message: str
    repairable: bool
    repaired: bool = False

    @property
    def key(self) -> tuple[str | None, str, str]:
        return self.collection, self.component, self.message

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CollectionSummary:
    """What was checked of one collection: rows W, live rows, tombstones T, its generation
    and the files read (paths relative to the database directory)."""

    name: str
    rows: int = 0
    live: int = 0
    tombstones: int = 0
    generation: int = 0
    files_checked: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CheckReport:
    """The result of ``db.check()``: ``ok``, ``problems``, ``collections`` (summaries).

    >>> report = db.check()  # doctest: +SKIP
    >>> report.ok, [p.message for p in report.problems]  # doctest: +SKIP
    (True, [])
    """

    def __init__(self, path: str, problems: list[Problem],
                 collections: list[CollectionSummary], *, repair: bool = False,
                 seconds: float = 0.0) -> None:
        self.path = path
        self.problems = problems
        self.collections = collections
        self.repair = repair
        self.seconds = seconds

    @property
    def ok(self) -> bool:
        """True when no problem is left unrepaired."""
        return all(p.repaired for p in self.problems)

    @property
    def unrepaired(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ok": self.ok, "repair": self.repair,
                "seconds": round(self.seconds, 3),
                "collections": [c.to_dict() for c in self.collections],
                "problems": [p.to_dict() for p in self.problems]}

    def __repr__(self) -> str:
        return (f"CheckReport({self.path!r}, ok={self.ok}, problems={len(self.problems)}, "
                f"collections={len(self.collections)})")

    def __str__(self) -> str:
        fixed = sum(p.repaired for p in self.problems)
        verdict = "ok" if self.ok else "NOT OK"
        head = f"vecdb check {self.path}: {verdict}, {len(self.problems)} problem(s)"
        lines = [head + (f", {fixed} repaired" if fixed else "")]
        if self.collections:
            lines.append("")
            lines += _table(["collection", "rows", "live", "tombstones", "generation", "files"],
                            [[c.name, c.rows, c.live, c.tombstones, c.generation,
                              len(c.files_checked)] for c in self.collections])
        if self.problems:
            lines.append("")
            lines += _table(["collection", "component", "status", "message"],
                            [[p.collection or "-", p.component, _status(p), p.message]
                             for p in self.problems])
        return "\n".join(lines)


def _status(p: Problem) -> str:
    if p.repaired:
        return "repaired"
    return "repairable" if p.repairable else "NOT repairable"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [header] + [[f"{v:,}" if type(v) is int else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header) - 1)]
    return ["  ".join([c.ljust(w) for c, w in zip(r[:-1], widths)] + [r[-1]]).rstrip()
            for r in cells]


class Findings:
    """Collects the problems of one check, capped per kind (invariant 1).

    ``add(component, message, repairable, kind=)``: kind groups findings of the same sort
    (default: the component); past MAX_PER_GROUP of a (collection, kind), they are counted.
    """

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._counts: dict[tuple[str | None, str], list[Any]] = {}

    def add(self, collection: str | None, component: str, message: str,
            repairable: bool, kind: str | None = None) -> None:
        group = (collection, kind or component)
        entry = self._counts.setdefault(group, [0, component, repairable])
        entry[0] += 1
        if entry[0] <= MAX_PER_GROUP:
            self.problems.append(Problem(collection, component, message, repairable))

    def components(self, collection: str | None, repairable: bool | None = None) -> set:
        """Components with problems of collection (only repairable / not, when given)."""
        return {p.component for p in self.problems if p.collection == collection and
                (repairable is None or p.repairable == repairable)}

    def finish(self) -> list[Problem]:
        """The problems, with one more per kind that passed the cap."""
        for (collection, kind), (count, component, repairable) in self._counts.items():
            if count > MAX_PER_GROUP:
                self.problems.append(Problem(
                    collection, component, f"... and {count - MAX_PER_GROUP} more problem(s) "
                    f"of this kind ({kind})", repairable))
        self._counts.clear()
        return self.problems
