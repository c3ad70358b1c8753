"""The in-memory lexical index over distinct labels: stemming, best-first order, hostile queries."""

import pytest

from steerlab.features.lexical_index import LexicalIndex

TEXTS = ["French text", "Python function definitions", "refusals to harmful requests", "text in German", "cats"]


def test_finds_labels_by_word_and_stem():
    index = LexicalIndex(TEXTS)
    assert index.search("refusal", 5)[0][0] == 2  # porter stemming
    assert {p for p, _ in index.search("text", 5)} == {0, 3}
    assert index.search("python french", 5)[0][0] in (0, 1) and len(index.search("python french", 5)) == 2
    scores = [s for _, s in index.search("text German", 5)]
    assert scores == sorted(scores, reverse=True) and index.search("text German", 5)[0][0] == 3  # both words


HOSTILE = [
    '"',
    'python"',
    "NEAR(a b)",
    "text*",
    "py*",
    "-python",
    "^python",
    "a AND",
    "(",
    "AND OR NOT",
    "col:value",
    "text:python",
    "'; DROP TABLE labels; --",
    "') OR 1=1 --",
    "",
    "   ",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_or_empty_queries_are_plain_words(query):
    index = LexicalIndex(TEXTS)
    hits = index.search(query, 5)
    assert all(0 <= p < len(TEXTS) for p, _ in hits)
    assert index.search("cats", 5) == [(4, index.search("cats", 5)[0][1])]  # the table is still there


def test_a_prequoted_expression_means_the_same_as_its_words():
    index = LexicalIndex(TEXTS)
    assert index.search('"python" OR "french"', 5) == index.search("python french", 5)
    assert {p for p, _ in index.search('"python" OR "french"', 5)} == {0, 1}


def test_limit_and_no_labels():
    assert len(LexicalIndex(TEXTS).search("text", 1)) == 1
    assert LexicalIndex(TEXTS).search("text", 0) == []
    assert LexicalIndex([]).search("text", 5) == []
