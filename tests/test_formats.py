"""File formats of import/export (vecdb/io/formats.py, format_jsonl.py, format_parquet.py,
format_npy.py): suffixes, JSONL details (extra keys, BOM, CRLF, blank lines, compressed and
truncated files), Parquet files written by other tools (list<double> vectors, plain columns
as metadata, struct metadata, bad schemas), .npy dtypes and shapes, and pyarrow missing.
"""

from __future__ import annotations

import gzip
import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vecdb
from vecdb.errors import (
    CorruptionError,
    DimensionMismatchError,
    InvalidArgumentError,
    InvalidMetadataError,
)
from vecdb.io.formats import detect


@pytest.mark.parametrize("path,format,want", [
    ("a.jsonl", None, ("jsonl", None)),
    ("A.NDJSON", None, ("jsonl", None)),
    ("dir.v1/a.jsonl.gz", None, ("jsonl", "gz")),
    ("a.ndjson.zst", None, ("jsonl", "zst")),
    ("a.parquet", None, ("parquet", None)),
    ("a.pq", None, ("parquet", None)),
    ("a.npy", None, ("npy", None)),
    ("a.txt", "jsonl", ("jsonl", None)),
    ("a.json.gz", "jsonl", ("jsonl", "gz")),
    ("a.data", "parquet", ("parquet", None)),
    ("a.jsonl.gz", "npy", ("npy", None)),
])
def test_detect(path, format, want):
    assert detect(path, format) == want


@pytest.mark.parametrize("path,format,message", [
    ("a.csv", None, "cannot tell the format of 'a.csv'"),
    ("a.jsonl", "json", "format: expected one of"),
    ("a", None, "give format="),
])
def test_detect_refuses(path, format, message):
    with pytest.raises(InvalidArgumentError, match=message):
        detect(path, format)


# -- JSONL ---------------------------------------------------------------------------------

def test_jsonl_extra_keys_bom_crlf_blank_lines(db, tmp_path):
    path = tmp_path / "ext.jsonl"
    lines = [json.dumps({"id": "a", "vector": [1, 0], "year": 2024, "tags": ["x", "y"]}),
             "   ",
             json.dumps({"vector": [0, 1], "id": 5, "metadata": {"k": 1}, "lang": "fr",
                         "document": "d"}),
             json.dumps({"id": 6, "vector": [1, 1], "metadata": None, "document": None})]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n\r\n")
    col = db.import_("c", path, metric="l2")
    got = [(r.id, r.metadata, r.document) for r in col.get()]
    assert got == [("a", {"year": 2024, "tags": ["x", "y"]}, None),
                   (5, {"k": 1, "lang": "fr"}, "d"), (6, {}, None)]


@pytest.mark.parametrize("suffix,opener", [("gz", gzip.open), ("zst", None)])
def test_compressed_jsonl_and_truncation(db, tmp_path, suffix, opener):
    col = db.create_collection("c", dim=8, metric="l2")
    col.add(ids=list(range(3000)), vectors=np.random.default_rng(0).random((3000, 8)),
            documents=[f"document number {i}" for i in range(3000)])
    path = tmp_path / f"x.jsonl.{suffix}"
    assert col.export(path) == 3000
    data = path.read_bytes()
    if opener is not None:  # a standard gzip reader reads it
        with opener(path, "rt", encoding="utf-8") as f:
            assert json.loads(f.readline())["document"] == "document number 0"
    assert db.import_("copy", path, metric="l2").count() == 3000
    cut = tmp_path / f"cut.jsonl.{suffix}"
    cut.write_bytes(data[: len(data) - 40])
    with pytest.raises(CorruptionError, match="cut.jsonl"):
        db.import_("cut", cut, metric="l2")
    assert "cut" not in db.list_collections()


@pytest.mark.parametrize("batch_size", [1, 2, 3, 1000])
def test_jsonl_batches_hold_batch_size_lines(db, tmp_path, batch_size):
    path = tmp_path / "b.jsonl"
    path.write_text("".join(json.dumps({"id": i, "vector": [i, 1]}) + "\n" for i in range(7)))
    sizes = []
    col = db.create_collection("c", dim=2, metric="l2")
    col.add_from(path, batch_size=batch_size, progress=lambda d, t: sizes.append(d))
    assert sizes == [min(7, batch_size * (i + 1)) for i in range(-(-7 // batch_size))]
    assert [r.id for r in col.get()] == list(range(7))


def test_jsonl_errors_name_the_line(db, tmp_path):
    col = db.create_collection("c", dim=2, metric="l2")
    for content, message in [
        (b'{"id": 1, "vector": [1, 2]}\n\xff\xfe\n', "line 2: not valid JSON"),
        (b'{"id": 1, "vector": [1, 2]}\n{"id": 2, "vector": []}\n', "line 2: \"vector\" has 0"),
        (b'\n\n{"id": 1, "vector": [1, 2], "metadata": "x"}\n', "line 3: \"metadata\" must be"),
        (b'{"id": 1, "vector": [1, 2]}\n{"id": 1, "vector": [1, 2]}\n', r"line 2, id: "),
    ]:
        path = tmp_path / "e.jsonl"
        path.write_bytes(content)
        with pytest.raises(InvalidArgumentError, match=message):
            col.add_from(path)
        assert col.count() == 0


# -- Parquet -------------------------------------------------------------------------------

def test_external_parquet_with_plain_columns(db, tmp_path):
    table = pa.table({
        "id": pa.array([10, 11, 12], type=pa.int32()),
        "vector": pa.array([[1.0, 0.5, 0.25], [0.0, 1.0, 2.0], [3.0, 2.0, 1.0]],
                           type=pa.list_(pa.float64())),
        "year": [2020, None, 2024],
        "tags": [["a"], [], None],
        "score": pa.array([0.5, 1.5, None], type=pa.float32()),
        "document": pa.array(["héllo", None, ""], type=pa.large_string()),
    })
    pq.write_table(table, tmp_path / "ext.parquet")
    col = db.import_("ext", tmp_path / "ext.parquet", metric="l2", batch_size=2)
    assert col.metric == "l2" and col.dim == 3 and isinstance(col.index, vecdb.HNSW)
    got = [(r.id, r.metadata, r.document, r.vector.tolist())
           for r in col.get(include=("metadata", "document", "vector"))]
    assert got == [(10, {"year": 2020, "tags": ["a"], "score": 0.5}, "héllo", [1, 0.5, 0.25]),
                   (11, {"tags": [], "score": 1.5}, None, [0, 1, 2]),
                   (12, {"year": 2024}, "", [3, 2, 1])]
    assert db.import_("default", tmp_path / "ext.parquet").metric == "cosine"


def test_parquet_written_by_pandas(db, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"id": ["x", "y"], "vector": [[1.0, 0.0], [0.0, 2.0]],
                       "lang": ["en", "de"]}, index=[7, 9])  # the index becomes a column
    df.to_parquet(tmp_path / "pd.parquet")
    assert "__index_level_0__" in pq.read_schema(tmp_path / "pd.parquet").names
    col = db.import_("pd", tmp_path / "pd.parquet", metric="l2")
    assert [(r.id, r.metadata) for r in col.get()] == [("x", {"lang": "en"}),
                                                       ("y", {"lang": "de"})]


def test_parquet_struct_metadata_and_string_ids(db, tmp_path):
    table = pa.table({"id": ["a", "b"], "vector": [[1.0, 2.0], [3.0, 4.0]],
                      "metadata": [{"k": 1, "s": "x"}, {"k": None, "s": "y"}]})
    pq.write_table(table, tmp_path / "s.parquet")
    col = db.import_("s", tmp_path / "s.parquet", metric="l2")
    assert [(r.id, r.metadata) for r in col.get()] == [("a", {"k": 1, "s": "x"}),
                                                       ("b", {"s": "y"})]


@pytest.mark.parametrize("columns,error,message", [
    ({"vector": [[1.0, 2.0]]}, InvalidArgumentError, "no 'id' column"),
    ({"id": [1]}, InvalidArgumentError, "no 'vector' column"),
    ({"id": [1.5], "vector": [[1.0, 2.0]]}, InvalidArgumentError, "'id' must hold"),
    ({"id": [1], "vector": ["1,2"]}, InvalidArgumentError, "'vector' must be a list"),
    ({"id": [1, 2, 3], "vector": [[1.0, 2.0], [1.0, 2.0], [1.0]]}, DimensionMismatchError,
     "row 2: vector has 1 values"),
    ({"id": [1, 2], "vector": [[1.0, 2.0], None]}, InvalidArgumentError, "row 1: vector is null"),
    ({"id": [1, None], "vector": [[1.0, 2.0], [1.0, 2.0]]}, InvalidArgumentError,
     "row 1: id is null"),
    ({"id": [1, 2], "vector": [[1.0, 2.0], [1.0, None]]}, InvalidArgumentError,
     "row 1, vector: contains NaN"),
    ({"id": [1, 2], "vector": [[1.0, 2.0]] * 2, "metadata": ["{}", "[1]"]},
     InvalidMetadataError, "row 1: metadata must be a JSON object"),
    ({"id": [1, 2], "vector": [[1.0, 2.0]] * 2, "metadata": ['{"a": 1}', None], "a": [2, 3]},
     InvalidArgumentError, "row 0: field 'a' is both"),
    ({"id": [1, 2], "vector": [[1.0, 2.0]] * 2, "when": pa.array([1, 2], pa.timestamp("s"))},
     InvalidMetadataError, "row 0, metadata\\['when'\\]: unsupported value type datetime"),
])
def test_parquet_errors_name_column_and_row(db, tmp_path, columns, error, message):
    pq.write_table(pa.table(columns), tmp_path / "bad.parquet")
    with pytest.raises(error, match=message):
        db.import_("bad", tmp_path / "bad.parquet", dim=2, metric="l2")
    assert db.list_collections() == []


def test_not_a_parquet_file(db, tmp_path):
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(CorruptionError, match="not a readable Parquet file"):
        db.import_("x", tmp_path / "fake.parquet")


def test_parquet_from_a_newer_vecdb_is_refused(db, tmp_path):
    col = db.create_collection("c", dim=2)
    col.add(ids=[1], vectors=[[1, 0]])
    col.export(tmp_path / "a.parquet")
    table = pq.read_table(tmp_path / "a.parquet")
    config = json.loads(table.schema.metadata[b"vecdb"])
    config["version"] = 99
    pq.write_table(table.replace_schema_metadata({b"vecdb": json.dumps(config)}),
                   tmp_path / "new.parquet")
    with pytest.raises(vecdb.FormatVersionError, match="newer vecdb"):
        db.import_("x", tmp_path / "new.parquet")
    assert db.list_collections() == ["c"]


def test_missing_pyarrow_is_a_clear_error(db, tmp_path, monkeypatch):
    col = db.create_collection("c", dim=2)
    col.add(ids=[1], vectors=[[1, 0]])
    col.export(tmp_path / "a.parquet")
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, name, None)  # import pyarrow now fails
    with pytest.raises(InvalidArgumentError, match=r"pip install 'vecdb\[parquet\]'"):
        col.export(tmp_path / "b.parquet")
    with pytest.raises(InvalidArgumentError, match=r"pip install 'vecdb\[parquet\]'"):
        db.import_("x", tmp_path / "a.parquet")
    assert not (tmp_path / "b.parquet").exists() and db.list_collections() == ["c"]
    assert col.export(tmp_path / "a.jsonl") == 1  # other formats do not need it


# -- .npy ----------------------------------------------------------------------------------

def test_npy_dtypes_and_order(db, tmp_path):
    X = np.random.default_rng(1).standard_normal((50, 6))
    np.save(tmp_path / "f64.npy", np.asfortranarray(X))
    np.save(tmp_path / "i16.npy", (X * 10).astype(np.int16))
    a = db.import_("a", tmp_path / "f64.npy", metric="l2", batch_size=7)
    assert np.stack([r.vector for r in a.get(include=("vector",))]).tobytes() == \
        X.astype(np.float32).tobytes()
    b = db.import_("b", tmp_path / "i16.npy", metric="l2", ids=[f"r{i}" for i in range(50)])
    assert b.get(ids=["r4"], include=("vector",))[0].vector.tolist() == \
        (X[4] * 10).astype(np.int16).tolist()


@pytest.mark.parametrize("array,message", [
    (np.ones(5, np.float32), r"shape \(5,\)"),
    (np.ones((2, 2, 2), np.float32), "shape"),
    (np.array([["a", "b"]]), "dtype"),
    (np.array([[1 + 1j, 2]]), "dtype"),
])
def test_npy_refuses_what_is_not_vectors(db, tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(InvalidArgumentError, match=message):
        db.import_("x", tmp_path / "x.npy")
    assert db.list_collections() == []


def test_npy_pickled_objects_are_refused(db, tmp_path):
    np.save(tmp_path / "o.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(CorruptionError, match="o.npy"):
        db.import_("o", tmp_path / "o.npy")
