"""BM25 scoring (vecdb/query/bm25.py) against a direct reference computation."""

import math

import numpy as np
import pytest

from vecdb.query import bm25
from vecdb.storage.postings import POSTING_DTYPE

CORPUS = [
    "apple shares rise as aapl beats estimates",
    "apple pie recipe with fresh apple slices",
    "microsoft msft and apple lead the market",
    "a quiet day on the market",
    "aapl aapl aapl options expire friday",
]


def _index(docs):
    """Postings per term of whitespace-split docs (the tokenizer is tested elsewhere)."""
    lists = {}
    for row, doc in enumerate(docs):
        words = doc.split()
        for term in set(words):
            lists.setdefault(term, []).append((row, words.count(term), len(words)))
    return {t: np.array(p, dtype=POSTING_DTYPE) for t, p in lists.items()}


def _reference(docs, query, k1, b):
    n = len(docs)
    split = [d.split() for d in docs]
    avg = sum(map(len, split)) / n
    scores = {}
    for row, words in enumerate(split):
        s = 0.0
        for term in set(query.split()):
            tf = words.count(term)
            if not tf:
                continue
            df = sum(term in w for w in split)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            s += query.split().count(term) * idf * tf * (k1 + 1) / (
                tf + k1 * (1 - b + b * len(words) / avg))
        if s:
            scores[row] = s
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@pytest.mark.parametrize("query", ["apple", "aapl", "apple market", "apple apple pie",
                                   "nothing here", "market"])
@pytest.mark.parametrize("k1,b", [(1.2, 0.75), (2.0, 0.0), (0.5, 1.0)])
def test_scores_equal_the_reference(query, k1, b):
    index = _index(CORPUS)
    n = len(CORPUS)
    avg = sum(len(d.split()) for d in CORPUS) / n
    terms = query.split()
    lists = {t: (index.get(t, np.empty(0, POSTING_DTYPE)), terms.count(t)) for t in set(terms)}
    rows, scores = bm25.score(lists, n, avg, k1=k1, b=b)
    ref = _reference(CORPUS, query, k1, b)
    assert rows.tolist() == [r for r, _ in ref]
    np.testing.assert_allclose(scores, [s for _, s in ref], rtol=1e-12)


def test_rare_exact_term_outranks_common_ones():
    index = _index(CORPUS)
    lists = {t: (index[t], 1) for t in ("aapl", "apple")}
    rows, _ = bm25.score(lists, len(CORPUS), 6.0)
    assert rows[0] == 4  # three times the rare "aapl"


def test_top_k_keeps_ties_by_smaller_row_and_allow_filters():
    p = np.array([(r, 1, 5) for r in range(10)], dtype=POSTING_DTYPE)  # all tied
    rows, scores = bm25.score({"t": (p, 1)}, 20, 5.0, k=3)
    assert rows.tolist() == [0, 1, 2] and len(set(scores.tolist())) == 1
    allow = np.zeros(1, dtype=np.uint64)
    allow[0] = (1 << 7) | (1 << 4)
    rows, _ = bm25.score({"t": (p, 1)}, 20, 5.0, k=3, allow=allow)
    assert rows.tolist() == [4, 7]
    full_rows, full_scores = bm25.score({"t": (p, 1)}, 20, 5.0)
    assert full_rows.tolist() == list(range(10))
    empty = bm25.score({}, 20, 5.0, k=3)
    assert len(empty[0]) == 0 and len(empty[1]) == 0
