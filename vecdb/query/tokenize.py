"""The tokenizer of the BM25 full-text index: text to the terms that postings store.

A Unicode-aware, lowercasing word split that keeps identifiers (``AAPL``, ``US0378331005``,
``gpt-4o``, ``v2.1.0``, ``foo_bar``, ``user@example.com``) whole, and also emits their parts so
that a query for one part still matches. No dictionaries, no models, no network: the same text
gives the same tokens on every machine (for a given Python version's Unicode tables).

Rules, in order:
 1. Normalization: the right single quote U+2019 becomes ``'`` (so ``don’t`` is ``don't``) and
    the soft hyphen U+00AD is deleted; then NFKC and ``str.casefold()``, both once more when
    casefolding left a string that is not NFKC. (26 characters such as ``ǰ ΐ ΰ ẖ ῶ`` have no form
    that is both NFKC and casefolded: they stay casefolded, a letter and combining marks.) ASCII
    text is only lowercased (the same result, faster). Full-width forms fold (``ＡＡＰＬ１２３`` is
    ``aapl123``), ``ß`` and ``ẞ`` fold to ``ss``, final sigma to sigma. Accents are kept
    (``café`` stays ``café``, not ``cafe``); there is no locale tailoring: ``I`` folds to ``i``,
    Turkish ``İ`` to ``i`` + U+0307 (combining dot above, kept in the token: ``İstanbul`` does not
    match ``istanbul``) and dotless ``ı`` stays ``ı``.
 2. Characters (after normalization):
      word char   anything ``str.isalnum()`` holds for (letters and digits of every script)
      mark        a combining mark (Mn, Mc), allowed inside a token after its first character
                  (Devanagari vowel signs, the Turkish dot); variation selectors and enclosing
                  marks (keycaps) are separators
      CJK char    a word char of Han, Hiragana, Katakana, Bopomofo or Hangul (_CJK_RANGES)
      connector   one of ``- _ . / : + # @ '``
    Everything else separates tokens: whitespace, other punctuation (``, ; ! ? ( ) " = & %``),
    symbols and emoji, control and format characters (the zero-width joiner and non-joiner too).
 3. A word is a run of (non-CJK) word chars and marks that starts with a word char, or several such runs
    joined by connector runs: a connector joins only when it sits BETWEEN two word chars, so a
    trailing ``.`` ends a sentence (``world.`` is ``world``) and leading or trailing connectors
    are dropped (``-foo-`` is ``foo``, ``#python`` is ``python``, ``@user`` is ``user``).
    One exception: a run of ``+``/``#`` right after a letter at the end of a word stays on it
    (``c++``, ``c#``, ``f#``, ``disney+``; ``3+`` is ``3``).
 4. A word without connectors or ``+``/``#`` suffix is one token. Any other word is a compound:
    it gives the whole compound first, then its parts (the runs between connectors, without the
    suffix), in order: ``gpt-4o`` gives ``gpt-4o gpt 4o``, ``v2.1.0`` gives ``v2.1.0 v2 1 0``,
    ``3.14`` gives ``3.14 3 14``, ``c++`` gives ``c++ c``, ``https://example.com/a`` gives
    ``https://example.com/a https example com a``. Apostrophes: when the last connector is a
    single ``'`` and the last part is an English clitic (s t d m re ve ll), that part is left
    out, so ``don't`` gives ``don't don`` and ``john's`` gives ``john's john`` (``o'neil``
    gives ``o'neil o neil``). Repeated parts are all emitted (term counts count them).
    camelCase is NOT split (``getUserName`` is ``getusername``); ``1,000`` is ``1 000``.
 5. CJK: scripts written without spaces get no word segmentation; each run of CJK chars gives
    its overlapping 2-character bigrams (``東京都`` gives ``東京 京都``), a run of one character
    gives that character. A mark stays with the character before it. Other scripts without
    spaces (Thai, Lao, Khmer, Myanmar) are split only at spaces and punctuation: a whole run is
    one token (rule 6 caps it).
 6. Length: no token is longer than MAX_TOKEN_CHARS (64) characters (at most 256 UTF-8 bytes,
    so postings keys stay small). A longer compound is dropped but its parts are kept; a longer
    simple word, part or bigram is truncated to its first 64 characters.
 7. Stop words are removed (from compounds and parts alike) only when the caller passes a set;
    the set should hold normalized (casefolded) words, as ENGLISH_STOPWORDS does.

Invariants: tokens are non-empty, at most MAX_TOKEN_CHARS long, hold no whitespace, are
casefolded (``t.casefold() == t``) and normalized (``normalize(t) == t``), and each
re-tokenizes to itself first (``tokenize(t)[0] == t``: a token's normalization and split leave
it whole, so a query for a token finds it). tokenize is pure and deterministic; the regexes of
ASCII text are compiled at import, those of other text on first use (see _UnicodeRegexes).

    >>> tokenize("Is gpt-4o better than C++? See v2.1.0.")
    ['is', 'gpt-4o', 'gpt', '4o', 'better', 'than', 'c++', 'c', 'see', 'v2.1.0', 'v2', '1', '0']
"""

from __future__ import annotations

import re
import sys
import unicodedata
from array import array
from collections import Counter
from typing import AbstractSet, Dict, FrozenSet, List, Optional

MAX_TOKEN_CHARS = 64
CONNECTORS = "-_./:+#@'"
#: what an apostrophe part may be to be left out of a compound's parts (rule 4)
CLITICS: FrozenSet[str] = frozenset({"s", "t", "d", "m", "re", "ve", "ll"})

#: a small English stop-word list: articles, pronouns, prepositions, conjunctions, auxiliaries
#: and other function words. Opt-in (tokenize(stopwords=ENGLISH_STOPWORDS)); note that it also
#: removes tickers and acronyms spelled like these words (IT, ALL, ON, A, NOW, SO).
ENGLISH_STOPWORDS: FrozenSet[str] = frozenset("""
    a an the
    i me my we us our you your he him his she her it its they them their
    this that these those who whom which what
    is am are was were be been being have has had do does did
    will would should can could may might must
    and or but if then else so because as while until
    of at by for with about between into through before after
    to from up down in out on off over under again
    here there when where why how
    all any both each more most other some such no not only than too very
    just also even
""".split())

_TRANSLATE = {0x2019: "'", 0x00AD: None}
_CLITIC_SEP = "'"
_SUFFIX = "+#"

# CJK blocks (rule 5). Only their word chars are CJK chars (the classes intersect with \w).
_CJK_RANGES = (
    (0x1100, 0x11FF),    # Hangul Jamo
    (0x2E80, 0x2FDF),    # CJK radicals (symbols: NFKC maps the Kangxi ones to ideographs)
    (0x3005, 0x3007),    # 々 〆 〇
    (0x3021, 0x3029),    # Hangzhou numerals
    (0x3031, 0x3035),    # kana repeat marks
    (0x3038, 0x303C),
    (0x3040, 0x31FF),    # Hiragana, Katakana, Bopomofo, Hangul compatibility jamo, ...
    (0x3400, 0x4DBF),    # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),    # CJK unified ideographs
    (0xA960, 0xA97F),    # Hangul Jamo extended A
    (0xAC00, 0xD7FF),    # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),    # CJK compatibility ideographs
    (0xFF66, 0xFFDC),    # half-width Katakana and Hangul (NFKC folds them to full width)
    (0x1AFF0, 0x1B2FF),  # Kana extended, supplement, small kana, Nushu
    (0x20000, 0x3FFFF),  # CJK ideographs extensions B.. (planes 2 and 3)
)


def _ranges_class(ranges) -> str:
    """The inside of a regex character class holding these code point ranges."""
    return "".join(f"\\U{a:08x}-\\U{b:08x}" if a != b else f"\\U{a:08x}" for a, b in ranges)


def _complement(ranges):
    out, start = [], 0
    for a, b in ranges:
        if a > start:
            out.append((start, a - 1))
        start = b + 1
    if start <= 0x10FFFF:
        out.append((start, 0x10FFFF))
    return out


def _mark_ranges():
    """Code point ranges of the combining marks Mn and Mc (no variation selectors), from this
    Python's Unicode tables. Marks live in planes 0 and 1 (plane 14's are variation selectors)."""
    codes = array("I", range(0x0300, 0x20000))
    if codes.itemsize == 4:  # every common platform: a fast way to the string of all of them
        chars = codes.tobytes().decode(f"utf-32-{sys.byteorder[0]}e", "surrogatepass")
    else:  # pragma: no cover
        chars = "".join(map(chr, codes))
    category = unicodedata.category
    marks = [ord(c) for c in re.findall(r"[^\w\s]", chars) if category(c) in ("Mn", "Mc")]
    ranges: list = []
    for cp in marks:
        if 0xFE00 <= cp <= 0xFE0F:  # variation selectors: separators (emoji presentation)
            continue
        if ranges and ranges[-1][1] == cp - 1 and cp != 0x10000:  # split at the BMP's end
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return ranges


def _word_pattern(word: str, mark: Optional[str], letter: str) -> str:
    """A word (rule 3): runs of word chars (and marks after the first char) joined by connector
    runs, with an optional +/# suffix after a letter. Word chars, marks and connectors are
    disjoint classes, so the pattern never backtracks more than a connector run."""
    run = f"{word}+(?:{mark}+{word}*)*" if mark else f"{word}+"
    return f"{run}(?:[{re.escape(CONNECTORS)}]+{run})*(?:(?<={letter})[{_SUFFIX}]+)?"


#: ASCII text (after lower()): words only. Compiled at import: it is cheap.
_ASCII_RE = re.compile(_word_pattern("[a-z0-9]", None, "[a-z]"))
_SPLIT_RE = re.compile(f"([{re.escape(CONNECTORS)}]+)")


class _UnicodeRegexes:
    """The regexes of non-ASCII text, built on first use (once per process, ~50 ms: scanning
    the Unicode tables for marks and compiling classes of hundreds of ranges), so that importing
    vecdb does not pay for them when every text is ASCII. Building twice in a race is harmless."""

    def __init__(self) -> None:
        cjk = _ranges_class(_CJK_RANGES)
        marks = _mark_ranges()
        # a mark; the astral ones behind a one-range guard: a class with astral ranges is a list
        # that re checks item by item, at every word end (findall on prose: 15 MB/s, not 8)
        mark = (f"(?:[{_ranges_class(r for r in marks if r[1] < 0x10000)}]|(?=[\\U00010000-"
                f"\\U0010ffff])[{_ranges_class(r for r in marks if r[0] >= 0x10000)}])")
        word = f"[^\\W_{cjk}]"                                    # a word char, not CJK
        cjk_char = f"[^\\W_{_ranges_class(_complement(_CJK_RANGES))}]"  # a CJK word char
        letter = r"[^\W\d_]"
        #: group 1 a CJK run, group 2 a word
        self.token = re.compile(f"({cjk_char}+(?:{mark}+{cjk_char}*)*)|"
                                f"({_word_pattern(word, mark, letter)})")
        self.mark = re.compile(mark)
        self.cjk_unit = re.compile(f"{cjk_char}{mark}*")  # a CJK char and the marks after it


_unicode: Optional[_UnicodeRegexes] = None


def _unicode_regexes() -> _UnicodeRegexes:
    global _unicode
    if _unicode is None:
        _unicode = _UnicodeRegexes()
    return _unicode


def normalize(text: str) -> str:
    """The text tokens are cut from (rule 1); normalize(normalize(t)) == normalize(t).

    >>> normalize("Straße ＡＰＰＬ")
    'strasse appl'
    """
    if text.isascii():
        return text.lower()  # ASCII: NFKC is the identity and casefold() is lower()
    text = unicodedata.normalize("NFKC", text.translate(_TRANSLATE)).casefold()
    if not unicodedata.is_normalized("NFKC", text):  # casefolding undid NFKC: once more
        text = unicodedata.normalize("NFKC", text).casefold()
    return text


def _compound(word: str, out: List[str]) -> None:
    """Appends the tokens of a word that is not a plain alnum run of at most MAX_TOKEN_CHARS."""
    suffixed = word[-1] in _SUFFIX
    pieces = _SPLIT_RE.split(word.rstrip(_SUFFIX) if suffixed else word)
    if len(pieces) == 1 and not suffixed:  # no connectors: a long word or one with marks
        out.append(word[:MAX_TOKEN_CHARS])
        return
    if len(word) <= MAX_TOKEN_CHARS:
        out.append(word)
    parts = pieces[0::2]
    if len(pieces) > 1 and pieces[-2] == _CLITIC_SEP and parts[-1] in CLITICS:
        parts.pop()
    out.extend(p if len(p) <= MAX_TOKEN_CHARS else p[:MAX_TOKEN_CHARS] for p in parts)


def _cjk(run: str, out: List[str]) -> None:
    """Appends the bigrams of a CJK run (rule 5)."""
    regexes = _unicode_regexes()
    units = regexes.cjk_unit.findall(run) if regexes.mark.search(run) else run
    if len(units) == 1:
        out.append(run[:MAX_TOKEN_CHARS])
        return
    out.extend((units[i] + units[i + 1])[:MAX_TOKEN_CHARS] for i in range(len(units) - 1))


def tokenize(text: str, *, stopwords: Optional[AbstractSet[str]] = None) -> List[str]:
    """The tokens of text, in order (see the module docstring for the rules).

    stopwords: tokens to leave out (normalized words, e.g. ENGLISH_STOPWORDS); None keeps all.

    >>> tokenize("AAPL and US0378331005: foo_bar, don't")
    ['aapl', 'and', 'us0378331005', 'foo_bar', 'foo', 'bar', "don't", 'don']
    >>> tokenize("The cat", stopwords=ENGLISH_STOPWORDS)
    ['cat']
    """
    text = normalize(text)
    out: List[str] = []
    append = out.append
    if text.isascii():
        for word in _ASCII_RE.findall(text):
            if len(word) <= MAX_TOKEN_CHARS and word.isalnum():
                append(word)
            else:
                _compound(word, out)
    else:
        for run, word in _unicode_regexes().token.findall(text):
            if run:
                _cjk(run, out)
            elif len(word) <= MAX_TOKEN_CHARS and word.isalnum():
                append(word)
            else:
                _compound(word, out)
    if stopwords:
        out = [t for t in out if t not in stopwords]
    return out


def term_counts(text: str, *, stopwords: Optional[AbstractSet[str]] = None) -> Dict[str, int]:
    """Term frequencies of tokenize(text): {token: count}, in order of first occurrence.

    >>> term_counts("to be or not to be")
    {'to': 2, 'be': 2, 'or': 1, 'not': 1}
    """
    return dict(Counter(tokenize(text, stopwords=stopwords)))
