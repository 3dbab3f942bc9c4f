"""Results, Records and the notebook reprs: text and HTML tables (escaped, cut, bounded),
to_list / to_pandas / to_arrow against the hits they came from, batch tables, col.peek(n),
and the reprs of Collection and Database."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

import vecdb
from vecdb import display

pd = pytest.importorskip("pandas", reason="the table tests need pandas (the test extra)")
pa = pytest.importorskip("pyarrow", reason="the table tests need pyarrow (the test extra)")


def _docs(db, name="docs", **kw):
    """A 4-d l2 collection of 6 items with mixed metadata; ids a..f in insertion order, and
    in order of distance from the origin."""
    col = db.create_collection(name, dim=4, metric="l2", **kw)
    col.add(ids=list("abcdef"), vectors=[[i, 0, 0, 0] for i in range(1, 7)],
            metadatas=[{"year": 2020, "lang": "en"}, {"year": 2021}, {"lang": "<de>"},
                       {"year": 2023, "tags": ["x", "y"]}, {}, {"score": 5, "year": 2025}],
            documents=["alpha <script>alert(1)</script>", "beta", None, "delta", "epsilon",
                       "zeta"])
    return col


def test_text_and_html_reprs_show_the_hits_and_escape_user_strings(db):
    col = _docs(db)
    hits = col.query([0, 0, 0, 0], k=3)
    text = repr(hits)
    assert text.splitlines()[0] == "Results(3 hits)"
    assert [line.split()[1] for line in text.splitlines()[2:]] == ["a", "b", "c"]
    assert "2020" in text and "alpha" in text
    html = hits._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;de&gt;" in html and "<de>" not in html
    assert "Results: 3 hits" in html and html.count("<tr>") == 1 + 3  # head + rows
    # one column per metadata field, in first-seen order, after the document
    head = html.split("<thead>")[1].split("</thead>")[0]
    assert [h.rsplit(">", 1)[1] for h in head.split("</th>")[:-1]] == \
        ["#", "id", "distance", "score", "document", "year", "lang"]
    assert vecdb.Results([])._repr_html_().count("<tr>") == 1


def test_reprs_are_bounded_rows_cells_and_metadata_columns(db):
    col = db.create_collection("wide", dim=2, metric="l2")
    n = 25
    long_doc = "word " * 400
    col.add(ids=list(range(n)), vectors=[[i, 0] for i in range(n)],
            metadatas=[{f"f{j:02d}": "v" * 200 for j in range(20)} for _ in range(n)],
            documents=[long_doc] * n)
    hits = col.query([0, 0], k=n)
    html = hits._repr_html_()
    assert html.count("<tr>") == 1 + display.MAX_ROWS + 1  # head, 10 rows, the footer
    assert "15 more hits (10 of 25 shown)" in html
    assert long_doc not in html and long_doc[:display.HTML_DOCUMENT - 1] + "…" in html
    assert "f07" in html and "f08" not in html.split("<tbody>")[0] and "+12 fields" in html
    shown = re.sub(r" title='[^']*'", "", html)  # the cells without their hover text
    assert "v" * 200 not in shown and "v" * (display.HTML_CELL - 1) + "…" in shown
    assert long_doc not in html  # not even in the hover text (TITLE_CHARS)
    text = repr(hits)
    lines = text.splitlines()
    assert len(lines) == 1 + 1 + display.MAX_ROWS + 1 and lines[-1].startswith("… 15 more hits")
    assert max(len(line) for line in lines) < 400


def test_to_list_equals_the_hits_and_is_json(db):
    col = _docs(db)
    hits = col.query([0, 0, 0, 0], k=4, include=("metadata", "document", "vector"))
    rows = hits.to_list()
    assert [r["id"] for r in rows] == [h.id for h in hits] == ["a", "b", "c", "d"]
    assert [r["distance"] for r in rows] == [h.distance for h in hits]
    assert [r["score"] for r in rows] == [h.score for h in hits]
    assert [r["metadata"] for r in rows] == [h.metadata for h in hits]
    assert [r["document"] for r in rows] == [h.document for h in hits]
    assert [r["vector"] for r in rows] == [h.vector.tolist() for h in hits]
    assert set(rows[0]) == {"id", "distance", "score", "metadata", "document", "vector"}
    assert json.loads(json.dumps(rows)) == rows
    rows[0]["metadata"]["year"] = 0  # a copy: the hit keeps its metadata
    assert hits[0].metadata["year"] == 2020
    assert "vector" not in col.query([0, 0, 0, 0], k=1).to_list()[0]


def test_to_pandas_one_row_per_hit_one_column_per_field(db):
    col = _docs(db)
    hits = col.query([0, 0, 0, 0], k=6)
    df = hits.to_pandas()
    assert list(df.columns) == ["id", "distance", "score", "document", "year", "lang", "tags",
                                "metadata.score"]
    assert df["id"].tolist() == list("abcdef")
    assert df["distance"].tolist() == [h.distance for h in hits]
    assert df["score"].tolist() == [h.score for h in hits]
    assert df["document"].iloc[1] == "beta" and pd.isna(df["document"].iloc[2])
    assert str(df["year"].dtype) == "Int64"  # ints with gaps stay ints
    assert df["year"].tolist()[:2] == [2020, 2021] and pd.isna(df["year"].iloc[2])
    assert df["tags"].iloc[3] == ["x", "y"] and df["metadata.score"].iloc[5] == 5
    nested = hits.to_pandas(flatten=False)
    assert list(nested.columns) == ["id", "distance", "score", "document", "metadata"]
    assert nested["metadata"].tolist() == [h.metadata for h in hits]
    with_vectors = col.query([0, 0, 0, 0], k=2, include=("vector",)).to_pandas()
    assert list(with_vectors.columns) == ["id", "distance", "score", "document", "vector"]
    np.testing.assert_array_equal(with_vectors["vector"].iloc[1], [2, 0, 0, 0])


def test_to_arrow_types_and_values(db):
    col = _docs(db)
    hits = col.query([0, 0, 0, 0], k=6, include=("metadata", "document", "vector"))
    table = hits.to_arrow()
    assert table.column_names == ["id", "distance", "score", "document", "year", "lang", "tags",
                                  "metadata.score", "vector"]
    assert table.schema.field("year").type == pa.int64()
    assert table.schema.field("tags").type == pa.list_(pa.string())
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 4)
    assert table.column("id").to_pylist() == list("abcdef")
    assert table.column("distance").to_pylist() == [h.distance for h in hits]
    assert table.column("year").to_pylist() == [2020, 2021, None, 2023, None, 2025]
    assert table.column("vector").to_pylist() == [h.vector.tolist() for h in hits]
    # a field that is a str in one row and an int in another: its JSON text
    col.add(ids=[7], vectors=[[9, 9, 9, 9]], metadatas=[{"year": "unknown"}])
    mixed = col.query([0, 0, 0, 0], k=7).to_arrow()
    assert mixed.schema.field("id").type == pa.string()
    assert mixed.column("id").to_pylist()[-1] == "7" and mixed.column("id").to_pylist()[0] == '"a"'
    assert mixed.column("year").to_pylist()[-1] == '"unknown"'
    assert mixed.column("year").to_pylist()[0] == "2020"


def test_empty_results(db):
    col = _docs(db)
    empty = col.query([0, 0, 0, 0], k=3, where={"year": 1900})
    assert len(empty) == 0 and repr(empty) == "Results(0 hits)"
    assert empty.to_list() == []
    df = empty.to_pandas()
    assert len(df) == 0 and list(df.columns) == ["id", "distance", "score", "document"]
    assert empty.to_arrow().num_rows == 0
    assert "0 hits" in empty._repr_html_()


def test_batch_tables_concatenate_with_the_query_number(db):
    col = _docs(db)
    batch = col.query([[0, 0, 0, 0], [7, 0, 0, 0]], k=2)
    df = vecdb.Results.batch_to_pandas(batch)
    assert df["query"].tolist() == [0, 0, 1, 1] and df["id"].tolist() == ["a", "b", "f", "e"]
    assert df["id"].tolist() == [h.id for r in batch for h in r]
    assert df["distance"].tolist() == [h.distance for r in batch for h in r]
    table = vecdb.Results.batch_to_arrow(batch)
    assert table.column("query").to_pylist() == [0, 0, 1, 1]
    assert table.column("id").to_pylist() == df["id"].tolist()
    assert len(vecdb.Results.batch_to_pandas([])) == 0
    with pytest.raises(vecdb.InvalidArgumentError, match=r"batch\[1\]"):
        vecdb.Results.batch_to_pandas([batch[0], "not results"])


def test_hybrid_results_carry_both_sides(db):
    col = _docs(db)
    hits = col.query([0, 0, 0, 0], text="beta delta", k=4)
    df = hits.to_pandas()
    for i, h in enumerate(hits):
        vec, txt = h.sides.get("vector"), h.sides.get("text")
        vec_rank, txt_rank = df["vector_rank"].iloc[i], df["text_rank"].iloc[i]
        assert (vec_rank == vec["rank"]) if vec else pd.isna(vec_rank)
        assert (txt_rank == txt["rank"]) if txt else pd.isna(txt_rank)
    assert hits.to_list()[0]["sides"] == hits[0].sides
    assert json.loads(json.dumps(hits.to_list())) == hits.to_list()
    assert "vector_rank" in repr(hits).splitlines()[1] and "text_rank" in hits._repr_html_()


def test_missing_pandas_or_pyarrow_names_the_extra(db, monkeypatch):
    hits = _docs(db).query([0, 0, 0, 0], k=1)
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"vecdb\[pandas\]"):
        hits.to_pandas()
    with pytest.raises(ImportError, match=r"vecdb\[parquet\]"):
        hits.to_arrow()


def test_peek_returns_the_first_records_in_insertion_order(db):
    col = _docs(db)
    first = col.peek(3)
    assert isinstance(first, vecdb.Records) and isinstance(first, list)
    assert [r.id for r in first] == ["a", "b", "c"]
    assert first[0] == vecdb.Record("a", {"year": 2020, "lang": "en"},
                                    "alpha <script>alert(1)</script>")
    assert [r.id for r in col.peek()] == list("abcde")
    assert [r.id for r in col.peek(100)] == list("abcdef")
    assert col.peek(0) == [] and repr(col.peek(0)) == "Records(0 records)"
    col.delete(ids=["b"])
    assert [r.id for r in col.peek(3)] == ["a", "c", "d"]
    with_vectors = col.peek(2, include=("vector",))
    assert with_vectors[0].metadata is None
    np.testing.assert_array_equal(with_vectors[1].vector, [3, 0, 0, 0])
    for bad in (-1, 1.5, "3", True, None):
        with pytest.raises(vecdb.InvalidArgumentError, match=r"^n: "):
            col.peek(bad)


def test_records_tables_and_reprs(db):
    col = _docs(db)
    records = col.peek(6)
    assert isinstance(records[1:3], vecdb.Records) and [r.id for r in records[1:3]] == ["b", "c"]
    assert records.ids.tolist() == list("abcdef")
    assert records.to_list()[0] == {"id": "a", "metadata": {"year": 2020, "lang": "en"},
                                    "document": "alpha <script>alert(1)</script>"}
    df = records.to_pandas()
    assert list(df.columns) == ["id", "document", "year", "lang", "tags", "metadata.score"]
    assert df["id"].tolist() == list("abcdef") and df["lang"].iloc[2] == "<de>"
    assert records.to_arrow().column("year").to_pylist() == [2020, 2021, None, 2023, None, 2025]
    text = repr(records)
    assert text.startswith("Records(6 records)") and "alpha" in text
    html = records._repr_html_()
    assert "&lt;script&gt;" in html and "<script>" not in html and html.count("<tr>") == 7
    wrapped = vecdb.Records(col.get(where={"year": {"$gte": 2021}}))
    assert [r.id for r in wrapped] == ["b", "d", "f"]
    with pytest.raises(vecdb.InvalidArgumentError, match=r"records\[0\]"):
        vecdb.Records([("a", None, None)])


def test_collection_repr_and_html(db):
    col = _docs(db, name="<b>docs</b>", quantization=vecdb.SQ8())
    text = repr(col)
    assert text.startswith("Collection(name='<b>docs</b>', dim=4, metric='l2', count=6, "
                           "index=HNSW(m=16, ef_construction=200, ef_search=64), "
                           "quantization=SQ8(")
    assert text.endswith("text_index=BM25(k1=1.2, b=0.75, stopwords=None))")
    html = col._repr_html_()
    assert "<b>docs</b>" not in html and "&lt;b&gt;docs&lt;/b&gt;" in html
    for field in ("count", "dim", "metric", "index", "quantization", "text index", "HNSW(m=16",
                  "SQ8(rescore=4", "BM25(k1=1.2"):
        assert field in html
    assert "Records: 5 records" in html and "&lt;script&gt;" in html  # a peek of 5
    col.delete(ids=["a"])
    assert "count=5" in repr(col) and "deleted rows" in col._repr_html_()
    plain = db.create_collection("plain", dim=2, text_index=False, index=vecdb.Flat())
    assert repr(plain) == ("Collection(name='plain', dim=2, metric='cosine', count=0, "
                           "index=Flat(), text_index=False)")
    assert "Records" not in plain._repr_html_()
    db.drop_collection("plain")
    assert ", dropped, " in repr(plain) and "dropped" in plain._repr_html_()


def test_database_repr_and_html_read_the_catalog_only(db_path):
    with vecdb.open(db_path) as db:
        _docs(db, name="<i>a</i>")
        db.create_collection("b", dim=8)
    with vecdb.open(db_path, readonly=True) as db:
        text = repr(db)
        assert text == (f"Database({str(db_path)!r}, collections={{'<i>a</i>': 6, 'b': 0}}, "
                        "readonly)")
        html = db._repr_html_()
        assert "2 collections" in html and "&lt;i&gt;a&lt;/i&gt;" in html and "<i>a" not in html
        assert html.count("<tr>") == 3 and "HNSW(m=16" in html and "BM25" in html
        assert db._collections == {}  # no collection was opened to count its items
    assert repr(db).endswith(", closed)") and "closed" in db._repr_html_()


def test_database_repr_lists_at_most_max_collections(db):
    for i in range(display.MAX_COLLECTIONS + 3):
        db.create_collection(f"c{i:02d}", dim=2)
    assert repr(db).endswith(", … +3 more}, open)")
    html = db._repr_html_()
    assert html.count("<tr>") == 1 + display.MAX_COLLECTIONS + 1 and "3 more collections" in html
