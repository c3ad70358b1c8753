"""Lexical search over the distinct label texts, held in memory.

An FTS5 table with a row per labeled feature would match a common word ("text", "because") in
hundreds of rows that are the same few labels, each joined to its feature and scored by bm25: up to
~4 ms per query on the default database. Search only needs the distinct labels (features that share
one come out together, strongest first), so it keeps an FTS5 table of those in an in-memory SQLite:
~1.3k rows on the default SAE, built in milliseconds when labels load. bm25's document frequencies
count distinct labels, so a label shared by many features does not make its words look common.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Sequence

FTS_TOKENIZE = "porter unicode61"
"""How label text is split into words (``refusal`` finds ``refusals``)."""

_FTS_OPERATORS = {"AND", "OR", "NOT", "NEAR"}


def fts_match_expression(query: str, max_words: int = 32) -> str:
    """A MATCH expression that cannot fail or inject: each word quoted as a literal, OR-ed.

    Bare FTS operators (AND/OR/NOT/NEAR in capitals) are dropped, so a caller's own pre-quoted
    ``"a" OR "b"`` means the same as ``a b``; quotes, ``*``, ``:`` and parentheses are never syntax."""
    words = [w for w in re.findall(r"\w+", query) if w not in _FTS_OPERATORS][:max_words]
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


class LexicalIndex:
    """``search(query, limit) -> [(position in texts, score)]``, best first; score is ``-bm25``."""

    def __init__(self, texts: Sequence[str]):
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute(f"CREATE VIRTUAL TABLE labels USING fts5(text, tokenize = '{FTS_TOKENIZE}')")
        self._conn.executemany("INSERT INTO labels (rowid, text) VALUES (?, ?)", enumerate(texts))
        self._lock = threading.Lock()  # one connection, many server threads

    def search(self, query: str, limit: int) -> list[tuple[int, float]]:
        match = fts_match_expression(query)
        if not match or limit < 1:
            return []
        with self._lock:
            rows = self._conn.execute(
                "SELECT rowid, rank FROM labels WHERE labels MATCH ? ORDER BY rank LIMIT ?", (match, int(limit))
            ).fetchall()
        return [(position, -float(rank)) for position, rank in rows]
