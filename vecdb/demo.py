"""The demo job: builds a small database of synthetic "documents" and searches it.

Run it with ``python -m vecdb demo ./demo.vdb``. It creates (or recreates) the collection
``demo`` in that directory, loads a few thousand clustered vectors with metadata and documents,
reopens the database to show persistence, runs single, batch, filtered, keyword and hybrid
queries and prints the hits, the filtered query's plan and the timings.
"""

from __future__ import annotations

import time
from typing import Callable, TextIO

import numpy as np

from .database import open as open_db

TOPICS = ["databases", "compilers", "gardening", "astronomy", "cooking", "music", "sailing",
          "chess"]


def _clustered(n: int, dim: int, rng: np.random.Generator) -> "tuple[np.ndarray, np.ndarray]":
    centers = rng.normal(size=(len(TOPICS), dim)).astype(np.float32)
    labels = rng.integers(0, len(TOPICS), size=n)
    vectors = centers[labels] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    return vectors.astype(np.float32), labels


def run(path: str, n: int = 5000, dim: int = 384, out: "TextIO | None" = None) -> None:
    """Runs the demo on the database directory ``path``."""
    say: Callable[[str], None] = (lambda s: print(s, file=out)) if out else print
    rng = np.random.default_rng(7)
    vectors, labels = _clustered(n, dim, rng)
    ids = [f"doc-{i:05d}" for i in range(n)]
    metadatas = [{"topic": TOPICS[t], "year": int(2000 + (i % 25))} for i, t in enumerate(labels)]
    documents = [f"A note about {TOPICS[t]} (#{i})" for i, t in enumerate(labels)]

    with open_db(path, durability="normal") as db:
        if "demo" in db.list_collections():
            db.drop_collection("demo")
        col = db.create_collection("demo", dim=dim, metric="cosine")
        t0 = time.perf_counter()
        for s in range(0, n, 1000):
            col.add(ids=ids[s:s + 1000], vectors=vectors[s:s + 1000],
                    metadatas=metadatas[s:s + 1000], documents=documents[s:s + 1000])
        dt = time.perf_counter() - t0
        say(f"added {n} vectors of dim {dim} in {dt * 1000:.1f} ms ({n / dt:,.0f} vectors/s)")

    t0 = time.perf_counter()
    db = open_db(path, readonly=True)
    col = db.get_collection("demo")
    say(f"reopened {path} read-only in {(time.perf_counter() - t0) * 1000:.1f} ms: {col!r}")

    query = vectors[42] + 0.1 * rng.normal(size=dim).astype(np.float32)
    t0 = time.perf_counter()
    hits = col.query(query, k=5)
    dt = time.perf_counter() - t0
    say(f"\nquery near doc-00042 ({TOPICS[labels[42]]}), k=5: {dt * 1000:.2f} ms")
    say(repr(hits))

    batch = vectors[:200] + 0.1 * rng.normal(size=(200, dim)).astype(np.float32)
    t0 = time.perf_counter()
    results = col.query(batch, k=10)
    dt = time.perf_counter() - t0
    same_topic = np.mean([[h.metadata["topic"] == TOPICS[labels[i]] for h in r]
                          for i, r in enumerate(results)])
    say(f"\nbatch of 200 queries, k=10: {dt * 1000:.1f} ms ({200 / dt:,.0f} queries/s); "
        f"{same_topic:.1%} of hits share the query's topic")
    record = col.get(ids=["doc-00042"])[0]
    say(f"\nget('doc-00042') -> {record.metadata} {record.document!r}")

    where = {"$and": [{"year": {"$gte": 2020}}, {"topic": {"$ne": TOPICS[labels[42]]}}]}
    t0 = time.perf_counter()
    hits = col.query(query, k=3, where=where, explain=True)
    dt = time.perf_counter() - t0
    plan = hits.explain
    say(f"\nfiltered query where={where}: {dt * 1000:.2f} ms (the first filter also builds the "
        f"filter columns from the stored metadata); {plan['matches']} of "
        f"{plan['live']} items match; plan {plan['plan']!r} ({plan['reason']}), "
        f"{plan['distance_computations']} distance computations")
    say(repr(hits))
    say(f"count(where_document={{'$contains': 'astronomy'}}) -> "
        f"{col.count(where_document={'$contains': 'astronomy'})}")

    t0 = time.perf_counter()
    hits = col.query(text="#1234", k=3)
    dt = time.perf_counter() - t0
    say(f"\nkeyword query text='#1234' (BM25): {dt * 1000:.2f} ms")
    say(repr(hits))
    t0 = time.perf_counter()
    hits = col.query(query, text="astronomy #1234", k=3)
    dt = time.perf_counter() - t0
    say(f"\nhybrid query near doc-00042 + text='astronomy #1234' (RRF): {dt * 1000:.2f} ms; "
        f"first hit's sides: {hits[0].sides}")
    say(repr(hits))
    db.close()
