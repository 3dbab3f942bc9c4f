"""The BM25 tokenizer (vecdb/query/tokenize.py): the rules of its module docstring, example by
example, and its invariants as hypothesis properties."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecdb.query.tokenize import (CLITICS, ENGLISH_STOPWORDS, MAX_TOKEN_CHARS, normalize,
                                  term_counts, tokenize)


@pytest.mark.parametrize("text, tokens", [
    # identifiers stay whole (rule 3), compounds give their parts after them (rule 4)
    ("AAPL", ["aapl"]),
    ("US0378331005", ["us0378331005"]),
    ("gpt-4o", ["gpt-4o", "gpt", "4o"]),
    ("GPT-4o-mini", ["gpt-4o-mini", "gpt", "4o", "mini"]),
    ("v2.1.0", ["v2.1.0", "v2", "1", "0"]),
    ("foo_bar", ["foo_bar", "foo", "bar"]),
    ("3.14", ["3.14", "3", "14"]),
    ("10:30", ["10:30", "10", "30"]),
    ("std::vector", ["std::vector", "std", "vector"]),
    ("a/b", ["a/b", "a", "b"]),
    ("a.a", ["a.a", "a", "a"]),                   # repeated parts are all emitted
    ("user@example.com", ["user@example.com", "user", "example", "com"]),
    ("https://example.com/a/b?q=1",
     ["https://example.com/a/b", "https", "example", "com", "a", "b", "q", "1"]),
    # +/# after a letter at a word's end is a suffix: whole word, then its stem
    ("C++", ["c++", "c"]),
    ("C#", ["c#", "c"]),
    ("F# and C#.", ["f#", "f", "and", "c#", "c"]),
    ("Disney+", ["disney+", "disney"]),
    ("c++11", ["c++11", "c", "11"]),
    ("3+ years", ["3", "years"]),                 # not after a letter: a separator
    ("#python @user", ["python", "user"]),       # leading connectors are dropped
    # apostrophes: a final English clitic is left out of the parts
    ("don't", ["don't", "don"]),
    ("John's", ["john's", "john"]),
    ("they're we've I'll I'd I'm", ["they're", "they", "we've", "we", "i'll", "i", "i'd", "i",
                                    "i'm", "i"]),
    ("O'Neil", ["o'neil", "o", "neil"]),
    ("rock'n'roll", ["rock'n'roll", "rock", "n", "roll"]),
    ("students' books", ["students", "books"]),
    ("don\u2019t", ["don't", "don"]),            # the typographic apostrophe is an apostrophe
    # sentence punctuation separates; connectors join only between word chars
    ("Hello, world.", ["hello", "world"]),
    ("Really?! (yes); \"no\" = [maybe] & 50%", ["really", "yes", "no", "maybe", "50"]),
    ("-foo-", ["foo"]),
    ("--foo--bar--", ["foo--bar", "foo", "bar"]),
    ("end. Next", ["end", "next"]),
    ("e.g. U.S.A.", ["e.g", "e", "g", "u.s.a", "u", "s", "a"]),
    ("1,000,000", ["1", "000", "000"]),
    ("getUserName", ["getusername"]),             # camelCase is not split
    ("snake_case_name", ["snake_case_name", "snake", "case", "name"]),
    ("", []),
    ("   \t\n ", []),
    ("... --- !!!", []),
])
def test_examples(text, tokens):
    assert tokenize(text) == tokens


def test_module_docstring_example():
    assert tokenize("Is gpt-4o better than C++? See v2.1.0.") == [
        "is", "gpt-4o", "gpt", "4o", "better", "than", "c++", "c", "see", "v2.1.0", "v2", "1", "0"]


# -- Unicode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, tokens", [
    ("Straße STRASSE ẞ", ["strasse", "strasse", "ss"]),        # casefold, not lower()
    ("café CAFÉ Ångström naïve", ["café", "café", "ångström", "naïve"]),  # accents are kept
    ("cafe\u0301", ["café"]),                                   # NFKC composes
    ("ＡＡＰＬ １２３ ＧＰＴ－４ｏ", ["aapl", "123", "gpt-4o", "gpt", "4o"]),  # full width folds
    ("x² ﬁle ①", ["x2", "file", "1"]),                          # compatibility forms fold
    ("ΣΟΦΊΑΣ σοφίας Ὀδυσσεύς", ["σοφίασ", "σοφίασ", "ὀδυσσεύσ"]),  # final sigma folds to σ
    ("Москва МОСКВА Ёлка", ["москва", "москва", "ёлка"]),
    ("हिन्दी भाषा", ["हिन्दी", "भाषा"]),                          # vowel signs stay in the word
    ("ภาษาไทย ดี", ["ภาษาไทย", "ดี"]),                          # no segmentation: one run
    ("naïve-café", ["naïve-café", "naïve", "café"]),
])
def test_unicode_words(text, tokens):
    assert tokenize(text) == tokens


def test_turkish_dotted_i_has_no_locale_tailoring():
    # İ casefolds to i + U+0307 (kept in the token as a mark); I folds to i; ı stays ı
    assert tokenize("İstanbul") == ["i\u0307stanbul"]
    assert tokenize("ISTANBUL") == ["istanbul"]
    assert tokenize("ıstanbul") == ["ıstanbul"]
    assert len({tokenize(w)[0] for w in ("İstanbul", "ISTANBUL", "ıstanbul")}) == 3


def test_characters_without_a_form_both_nfkc_and_casefolded_stay_casefolded():
    assert tokenize("ǰ") == ["j\u030c"]
    assert tokenize("j\u030c") == ["j\u030c"]
    assert normalize("ǰ") == normalize(normalize("ǰ"))


@pytest.mark.parametrize("text, tokens", [
    ("東京都", ["東京", "京都"]),                                  # bigrams of a CJK run
    ("東", ["東"]),                                              # a run of one: the character
    ("東京", ["東京"]),
    ("東京に行きます", ["東京", "京に", "に行", "行き", "きま", "ます"]),
    ("我爱北京。你好", ["我爱", "爱北", "北京", "你好"]),           # CJK punctuation separates
    ("한국어 텍스트", ["한국", "국어", "텍스", "스트"]),
    ("ｶﾀｶﾅ", ["カタ", "タカ", "カナ"]),                          # half width folds
    ("iPhone用のgpt-4o模型", ["iphone", "用の", "gpt-4o", "gpt", "4o", "模型"]),  # script borders
    ("模型-v2", ["模型", "v2"]),
    ("東\u0301京", ["東\u0301京"]),                                # a mark stays with its char
])
def test_cjk_bigrams(text, tokens):
    assert tokenize(text) == tokens


@pytest.mark.parametrize("text, tokens", [
    ("I ❤️ NY 🇺🇸", ["i", "ny"]),
    ("🚀launch🚀", ["launch"]),
    ("1️⃣ 2️⃣", ["1", "2"]),                       # variation selector, keycap: separators
    ("👍🏽👨‍👩‍👧", []),
    ("a\u200db a\u200cb", ["a", "b", "a", "b"]),  # zero-width joiner / non-joiner separate
])
def test_emoji_and_format_characters_separate(text, tokens):
    assert tokenize(text) == tokens


def test_soft_hyphen_is_deleted():
    assert tokenize("co\u00adoperate") == ["cooperate"]


def test_unicode_path_agrees_with_the_ascii_path():
    text = "Is gpt-4o, C++ or v2.1.0 better? don't -foo- user@x.com " + "z" * 80
    assert tokenize(text + " é") == tokenize(text) + ["é"]


# -- length ----------------------------------------------------------------------------------


def test_long_words_are_truncated():
    assert tokenize("a" * MAX_TOKEN_CHARS) == ["a" * MAX_TOKEN_CHARS]
    assert tokenize("a" * 1000) == ["a" * MAX_TOKEN_CHARS]
    assert tokenize("é" * 1000) == ["é" * MAX_TOKEN_CHARS]
    assert tokenize("東" * 1000) == ["東東"] * 999


def test_long_compounds_are_dropped_but_their_parts_kept():
    part = "x" * 30
    fits = "-".join([part, "y" * 33])                # 64 characters
    assert tokenize(fits) == [fits, part, "y" * 33]
    long = "-".join([part, part, "z" * 100])
    assert tokenize(long) == [part, part, "z" * MAX_TOKEN_CHARS]
    assert tokenize("c" + "+" * 100) == ["c"]


# -- stop words ------------------------------------------------------------------------------


def test_stopwords_are_removed_only_when_asked():
    text = "The cat is on the mat, and it's not a dog."
    assert tokenize(text) == ["the", "cat", "is", "on", "the", "mat", "and", "it's", "it", "not",
                              "a", "dog"]
    assert tokenize(text, stopwords=ENGLISH_STOPWORDS) == ["cat", "mat", "it's", "dog"]
    assert tokenize(text, stopwords={"cat", "dog"}) == [
        "the", "is", "on", "the", "mat", "and", "it's", "it", "not", "a"]
    assert tokenize(text, stopwords=set()) == tokenize(text)


def test_stopwords_apply_to_compounds_and_parts_alike():
    assert tokenize("to-do list", stopwords=ENGLISH_STOPWORDS) == ["to-do", "list"]
    assert tokenize("to-do", stopwords={"to-do"}) == ["to", "do"]


def test_english_stopwords_are_about_a_hundred_normalized_words():
    assert 90 <= len(ENGLISH_STOPWORDS) <= 160
    for word in ENGLISH_STOPWORDS:
        assert tokenize(word) == [word]          # plain tokens, so they can match
    assert {"the", "a", "and", "of", "is", "to"} <= ENGLISH_STOPWORDS
    assert not {"aapl", "python", "data"} & ENGLISH_STOPWORDS
    assert {"s", "t"} <= CLITICS


# -- term counts -----------------------------------------------------------------------------


def test_term_counts():
    assert term_counts("to be or not to be") == {"to": 2, "be": 2, "or": 1, "not": 1}
    assert list(term_counts("b a b c")) == ["b", "a", "c"]    # order of first occurrence
    assert term_counts("gpt-4o and gpt-4") == {"gpt-4o": 1, "gpt": 2, "4o": 1, "and": 1,
                                               "gpt-4": 1, "4": 1}
    assert term_counts("to be or not to be", stopwords=ENGLISH_STOPWORDS) == {}
    assert term_counts("") == {}
    assert type(term_counts("a")) is dict


# -- properties ------------------------------------------------------------------------------

#: characters that exercise every rule: connectors, suffixes, marks, CJK, emoji, folds
_TRICKY = ("aZz09-_./:+#@' \t\n,!?\u2019\u00ad\u0301\u0307\u0345\u030cİIıßẞΣσςЁё東京한국"
           "ひカ々ｶ１Ａ😀\ufe0f\u20e3\u200dǰΐﬁ²ีไ")
texts = st.one_of(st.text(max_size=60), st.text(_TRICKY, max_size=60))


def _check_token(token: str) -> None:
    assert isinstance(token, str) and token
    assert len(token) <= MAX_TOKEN_CHARS
    assert token.casefold() == token
    assert normalize(token) == token
    assert not any(c.isspace() for c in token)
    assert tokenize(token)[0] == token               # each token re-tokenizes to itself first


@settings(max_examples=400, deadline=None)
@given(texts)
def test_tokens_are_stable(text):
    tokens = tokenize(text)
    for token in tokens:
        _check_token(token)
    assert tokenize(text) == tokens                   # deterministic
    assert term_counts(text) == dict(Counter(tokens))


@settings(max_examples=150, deadline=None)
@given(texts)
def test_normalize_is_idempotent(text):
    once = normalize(text)
    assert normalize(once) == once
    assert once.casefold() == once


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["gpt-4o", "C++", "don't", "v2.1.0", "é", "東京都", "the", "a.",
                                 " ", ", ", "-", "x" * 70, "İ", "😀"]), max_size=12))
def test_tokens_of_joined_pieces_are_stable(pieces):
    text = "".join(pieces)
    for token in tokenize(text):
        _check_token(token)
    assert tokenize(text, stopwords=ENGLISH_STOPWORDS) == [
        t for t in tokenize(text) if t not in ENGLISH_STOPWORDS]


@settings(max_examples=150, deadline=None)
@given(st.text("abAB09-_./:+#@' ,!?", max_size=40))
def test_ascii_and_unicode_paths_agree(text):
    # a trailing non-ASCII word sends the text down the Unicode path; the rest must not change
    assert tokenize(text + " é") == tokenize(text) + ["é"]
    assert unicodedata.is_normalized("NFKC", " ".join(tokenize(text)))
