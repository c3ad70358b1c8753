"""Lexical search over the distinct label texts, held in memory.

The store's ``label_fts`` table has a row per labeled feature, so a common word ("text", "because")
matches hundreds of rows that are the same few labels, each joined to its feature and scored by bm25:
up to ~4 ms per query on the default database. Search only needs the distinct labels (features that
share one come out together, strongest first), so it keeps an FTS5 table of those in an in-memory
SQLite: ~1.3k rows on the default SAE, built in milliseconds when labels load. Same tokenizer and
the same quoting of query words as the store; bm25's document frequencies count distinct labels, so
a label shared by many features no longer makes its words look common.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

from steerlab.features.store_queries import fts_match_expression
from steerlab.features.store_schema import FTS_TOKENIZE


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
