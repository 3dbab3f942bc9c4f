"""A deterministic, dependency-free text embedding for the examples and their tests.

Not a language model: a hashed bag of features, good enough for texts that share words to
land close together, so the examples run offline, fast and identically everywhere (no model
download, no network, numpy only).

Each text becomes a weighted set of features:
  - words (lowercased, split on anything that is not a letter or digit, a few common English
    words left out, a light suffix stripping so "rivers" / "river" and "trained" / "train"
    agree), weight 1 each;
  - pairs of adjacent words, weight 0.5 (word order carries a little);
  - character trigrams of each word (with boundary marks), together weight 0.5 per word
    (so "photosynthesis" and "photosynthetic" share most of their features).
Repeated features count sublinearly (1 + log tf). Every feature is hashed with BLAKE2b (a
stable hash: never Python's salted ``hash()``) to 4 of the ``dim`` buckets, each with a sign
and half its weight (two unrelated features that share a bucket then add a little noise, not
a whole spurious match), and each row is scaled to unit length. 256 dimensions suit a few
thousand short texts; more dimensions mean fewer collisions.

Invariants: the same text and dim always give the same float32 row, in every process and on
every platform; every row has unit L2 norm (a text with no features, such as "" or "!?",
maps to one fixed direction), so the rows suit vecdb's cosine and ip metrics alike.

    >>> import numpy as np
    >>> from local_embedding import embed
    >>> X = embed(["rivers flood in spring", "a river flooded", "tax rules for 2024"])
    >>> X.shape, X.dtype
    ((3, 256), dtype('float32'))
    >>> bool(X[0] @ X[1] > X[0] @ X[2])
    True
"""

from __future__ import annotations

import hashlib
import math
import re
from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["embed", "embed_one", "tokenize"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOPWORDS = frozenset({
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "being", "both", "but", "by", "can", "could", "did", "do", "does", "each", "for", "from",
    "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it",
    "its", "may", "me", "might", "more", "most", "my", "no", "not", "of", "on", "or", "our",
    "out", "over", "she", "should", "so", "some", "such", "than", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "to", "too", "very", "was",
    "we", "were", "what", "when", "where", "which", "while", "who", "whom", "whose", "why",
    "will", "with", "would", "you", "your"})
_SUFFIXES = ("ingly", "ing", "edly", "ed", "ies", "s", "ly")
_EMPTY = "\x00empty"  # the one feature of a text that has none
HASHES = 4  # buckets per feature, each with 1/sqrt(HASHES) of its weight: a collision of two
            # features then costs a quarter of a shared word, not a whole one
_SHARE = 1.0 / math.sqrt(HASHES)


def _stem(word: str) -> str:
    """A light, deterministic suffix stripping (not a real stemmer): enough that plural and
    past forms meet their base form."""
    if len(word) <= 3 or word.isdigit():
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word
            stem = word[: -len(suffix)]
            if suffix == "ies":
                stem += "y"
            return stem
    return word


def tokenize(text: str) -> List[str]:
    """The words of text as embed() sees them: lowercased, stopwords dropped, stemmed.

    >>> tokenize("The rivers were flooding!")
    ['river', 'flood']
    """
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


@lru_cache(maxsize=1 << 16)
def _buckets(feature: str, dim: int) -> Tuple[Tuple[int, float], ...]:
    """The HASHES (bucket, sign) pairs of a feature, from a stable BLAKE2b digest (never
    Python's salted hash()): each 32-bit quarter of the digest picks one bucket and sign."""
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=4 * HASHES).digest()
    out = []
    for i in range(HASHES):
        h = int.from_bytes(digest[4 * i: 4 * i + 4], "big")
        out.append(((h >> 1) % dim, 1.0 if h & 1 else -1.0))
    return tuple(out)


def _features(text: str) -> Dict[str, float]:
    words = tokenize(text)
    counts: Dict[str, float] = {}

    def bump(feature: str, weight: float) -> None:
        counts[feature] = counts.get(feature, 0.0) + weight

    for word in words:
        bump("w:" + word, 1.0)
        marked = f"<{word}>"
        grams = [marked[i:i + 3] for i in range(len(marked) - 2)]
        for gram in grams:
            bump("c:" + gram, 0.5 / len(grams))
    for left, right in zip(words, words[1:]):
        bump(f"b:{left} {right}", 0.5)
    if not counts:
        counts[_EMPTY] = 1.0
    return counts


def _check(texts: Sequence[str], dim: int) -> List[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts: expected a sequence of str, got a single "
                        f"{type(texts).__name__} (use embed_one(text) or embed([text]))")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim: expected an int >= 1, got {dim!r}")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}]: expected str, got {type(text).__name__}")
    return out


def embed(texts: Sequence[str], dim: int = 256) -> np.ndarray:
    """float32 [len(texts), dim] unit rows, one per text (see the module docstring).

    >>> embed(["hello world"], dim=8).shape
    (1, 8)
    """
    items = _check(texts, dim)
    out = np.zeros((len(items), dim), dtype=np.float64)
    for row, text in enumerate(items):
        for feature, weight in _features(text).items():
            scaled = (weight if weight <= 1.0 else 1.0 + math.log(weight)) * _SHARE
            for bucket, sign in _buckets(feature, dim):
                out[row, bucket] += sign * scaled
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    empty = norms[:, 0] == 0.0  # every feature cancelled out in its buckets: tiny dims only
    if empty.any():
        out[empty], norms[empty] = 0.0, 1.0
        out[np.ix_(empty, [_buckets(_EMPTY, dim)[0][0]])] = 1.0
    return (out / norms).astype(np.float32)


def embed_one(text: str, dim: int = 256) -> np.ndarray:
    """The float32 [dim] embedding of one text (``embed([text], dim)[0]``).

    >>> float(round(float(embed_one("vector search") @ embed_one("vector search")), 4))
    1.0
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected str, got {type(text).__name__}")
    return embed([text], dim)[0]
