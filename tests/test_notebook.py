"""The examples folder: examples/rag.ipynb executes without error in a fresh kernel (nbclient,
against the deterministic local embedding), with the outputs it promises; and
examples/local_embedding.py is deterministic across processes, unit-length and sensible."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
NOTEBOOK = os.path.join(EXAMPLES, "rag.ipynb")


def _notebook_tools():
    """(nbformat, nbclient), or a skip naming the missing package (both, and ipykernel, are
    in the test extra)."""
    nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat")
    nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient")
    pytest.importorskip("ipykernel", reason="the notebook tests need ipykernel")
    return nbformat, nbclient


def _local_embedding():
    """examples/local_embedding.py (examples/ is not a package: imported from its folder)."""
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    import local_embedding
    return local_embedding


def _kernel_env(tmp_path) -> dict:
    """The test's environment with this checkout (and examples/) first on the kernel's path,
    so the kernel imports the vecdb under test whether or not one is installed, and IPython's
    profile and history in tmp_path."""
    path = [ROOT, EXAMPLES] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path),
                IPYTHONDIR=str(tmp_path / "ipython"), PYDEVD_DISABLE_FILE_VALIDATION="1")


def _outputs(nb, tag: str) -> str:
    """The text of every output of the cell tagged tag (stream text, text/plain, text/html)."""
    (cell,) = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts += [out.data.get("text/plain", ""), out.data.get("text/html", "")]
    return "\n".join(parts)


def test_rag_notebook_is_committed_without_outputs():
    nbformat, _ = _notebook_tools()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 10
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert nb.metadata.kernelspec.name == "python3"


def test_rag_notebook_executes(tmp_path):
    nbformat, nbclient = _notebook_tools()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": EXAMPLES}})
    client.execute(env=_kernel_env(tmp_path))  # raises CellExecutionError on a failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")
    # the kernel used this checkout's vecdb: the notebook shows Collection's HTML repr
    collection = _outputs(nb, "collection")
    assert "count=20" in collection and "<table>" in collection
    assert "Records: 5 records" in collection
    hits = _outputs(nb, "hits")
    assert "Results(3 hits)" in hits and "<table class='vecdb'>" in hits
    assert _outputs(nb, "top-hit").split()[0] == "biology-01"  # photosynthesis answers it
    assert "space-" in _outputs(nb, "filtered") and "history-" not in _outputs(nb, "filtered")
    assert "cooking-03" in _outputs(nb, "keyword")  # the Maillard passage
    assert _outputs(nb, "hybrid").split()[0] == "history-01"
    assert "year" in _outputs(nb, "pandas") and "biology-01" in _outputs(nb, "pandas")
    batch = _outputs(nb, "batch")
    assert all(i in batch for i in ("cooking-01", "computing-02", "computing-03"))
    prompt = _outputs(nb, "prompt")
    assert "Question: Who first walked on the Moon?" in prompt and "Neil Armstrong" in prompt
    assert prompt.index("[1] (history, 1969)") < prompt.index("[2]")
    assert "'passages': 20" in _outputs(nb, "database")


def test_local_embedding_is_stable_across_processes():
    texts = ["Photosynthesis in plants", "", "naïve café, 東京 2024!", "a b c " * 50]
    here = _local_embedding().embed(texts)
    script = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); "
              "from local_embedding import embed; "
              f"sys.stdout.buffer.write(embed({texts!r}).tobytes())")
    for seed in ("0", "12345"):  # str hashing is salted per process: embed must not use it
        out = subprocess.run([sys.executable, "-c", script, EXAMPLES], capture_output=True,
                             env=dict(os.environ, PYTHONHASHSEED=seed), check=True).stdout
        assert out == here.tobytes()


def test_local_embedding_shape_norms_and_neighbours():
    local_embedding = _local_embedding()
    embed = local_embedding.embed
    X = embed(["The rivers flooded in spring", "a river floods every spring",
               "tax rules for small companies", "", "?!"], dim=64)
    assert X.shape == (5, 64) and X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-6)
    assert X[0] @ X[1] > 0.5 > X[0] @ X[2]
    np.testing.assert_array_equal(X[3], X[4])  # no features: the one fixed direction
    assert embed([], dim=8).shape == (0, 8)
    np.testing.assert_array_equal(local_embedding.embed_one("river"), embed(["river"])[0])
    with pytest.raises(TypeError, match="texts"):
        embed("a single string")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embed(["ok", 3])
    with pytest.raises(ValueError, match="dim"):
        embed(["x"], dim=0)
