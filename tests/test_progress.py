"""io/progress.py: the progress= argument of long operations (here through vacuum, whose
index build reports in steps)."""

from __future__ import annotations

import numpy as np
import pytest

import vecdb
from vecdb.io.progress import progress_bar

from conftest import random_vectors


def test_callback_sees_every_update_and_the_total():
    seen = []
    with progress_bar(lambda done, total: seen.append((done, total)), None, "x") as bar:
        bar.update(3)
        bar.set_total(10)
        bar.update(7)
    assert seen == [(3, None), (10, 10)]


@pytest.mark.parametrize("bad", [1, "yes", 0.5, None])
def test_bad_progress_argument_is_refused_naming_it(bad):
    with pytest.raises(vecdb.InvalidArgumentError, match="progress"):
        progress_bar(bad, 1, "x")


def test_true_is_silent_when_stderr_is_not_a_terminal(capsys):
    with progress_bar(True, 5, "x") as bar:
        bar.update(5)
    assert capsys.readouterr().err == ""


def test_vacuum_reports_copy_build_and_renumbering_of_every_live_row(db):
    col = db.create_collection("c", dim=16, metric="l2", index=vecdb.HNSW(m=8))
    n = 30_000  # the graph is rebuilt in steps of at least 10,000 rows
    col.add(ids=list(range(n)), vectors=random_vectors(n, 16, seed=1))
    col.delete(ids=list(range(0, n, 3)))
    live = col.count()
    seen = []
    out = col.vacuum(progress=lambda done, total: seen.append((done, total)))
    assert out["rows_after"] == live
    totals = {t for _, t in seen}
    assert totals == {3 * live}
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 3 * live
    assert len(seen) >= 4  # copy chunk(s), two or more build steps, renumbering
    hits = col.query(random_vectors(1, 16, seed=2)[0], k=5)
    assert all(h.id % 3 for h in hits)


def test_vacuum_refuses_a_bad_progress_argument_and_changes_nothing(db):
    col = db.create_collection("c", dim=4, metric="l2")
    col.add(ids=[1, 2], vectors=np.eye(4)[:2])
    col.delete(ids=[1])
    with pytest.raises(vecdb.InvalidArgumentError, match="progress"):
        col.vacuum(progress="bar")
    assert col.stats()["tombstones"] == 1
