"""Tables of the feature database, its version check and its migrations.

Rows refer to an SAE by a small integer (``sae_key``) rather than its ~50-character id: with one
row per example that alone saves a few MB in the shipped file. Labels live on the feature row (a
feature has at most one current label); lexical search indexes the distinct label texts in memory
(``lexical_index.py``), so the file keeps no full-text table.
Built examples are windows of corpus sequences: the ``sequences`` table holds each sequence's token
ids once and an example row only its ``start`` (an empty ``token_ids`` blob means "from there"),
which shrank the shipped file by a third.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from steerlab.errors import NotFoundError, SteerlabError
from steerlab.features.schema import SCHEMA_VERSION

APPLICATION_ID = 0x5354524C  # "STRL": marks the file as ours for `file(1)` and for a quick check

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS saes (
    sae_key INTEGER PRIMARY KEY,
    sae_id TEXT NOT NULL UNIQUE,
    info TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS features (
    rowid INTEGER PRIMARY KEY,
    sae_key INTEGER NOT NULL REFERENCES saes(sae_key),
    idx INTEGER NOT NULL,
    stats TEXT, promoted TEXT, suppressed TEXT, cofiring TEXT,
    label_text TEXT, label_explainer TEXT, label_score REAL, label_scorer TEXT, label_details TEXT,
    UNIQUE (sae_key, idx)
);
CREATE TABLE IF NOT EXISTS examples (
    sae_key INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    rank INTEGER NOT NULL,
    quantile REAL, sequence_id INTEGER,
    max_act REAL NOT NULL, max_position INTEGER NOT NULL,
    token_ids BLOB NOT NULL, acts BLOB NOT NULL, tokens TEXT,
    start INTEGER,
    PRIMARY KEY (sae_key, idx, kind, rank)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sequences (
    sae_key INTEGER NOT NULL,
    sequence_id INTEGER NOT NULL,
    token_ids BLOB NOT NULL,
    PRIMARY KEY (sae_key, sequence_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vocab (
    sae_key INTEGER PRIMARY KEY,
    tokens TEXT NOT NULL
);
"""

RETIRED_TABLES = ("label_fts",)
"""Tables older files may hold that nothing reads any more (``label_fts`` mirrored every label into FTS5):
a writable open drops them, a read-only open (the shipped database) leaves them alone, unread."""


class StoreError(SteerlabError):
    """Anything wrong with a feature database or a request to it."""


class UnknownSAEError(StoreError, NotFoundError, KeyError):
    """No SAE with that id in the store (a KeyError too, so callers that expect lookups to fail can)."""


class FeatureIndexError(StoreError, NotFoundError, IndexError):
    """A feature index outside ``0..d_sae-1``."""

    code = "feature_not_found"


class StoreSchemaError(StoreError):
    """The file is not a feature database, or one of a schema version this code cannot use."""


def _v1_to_v2(conn: sqlite3.Connection) -> None:
    """Examples gain ``start``; the ``sequences`` table is created by ``_create_tables``. v1 rows keep
    their own token ids, so nothing else changes."""
    conn.execute("ALTER TABLE examples ADD COLUMN start INTEGER")


# from_version -> function upgrading a connection in place to from_version + 1 (inside a transaction).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1_to_v2}


def read_version(conn: sqlite3.Connection, path: str) -> int | None:
    """The stored schema version; None for an empty file (a new database)."""
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    except sqlite3.DatabaseError as err:
        raise StoreSchemaError(f"{path}: not a feature database (not readable as SQLite: {err})") from None
    if not names:
        return None
    if "meta" not in names:
        raise StoreSchemaError(
            f"{path}: an SQLite file but not a steerlab feature database (no meta table); pass --db with another path"
        )
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise StoreSchemaError(f"{path}: feature database without a valid schema_version")
    return int(row[0])


def check_version(version: int, path: str, readonly: bool) -> None:
    """Refuse versions we cannot read; older ones are migrated by ``migrate`` (writable opens only)."""
    if version > SCHEMA_VERSION:
        raise StoreSchemaError(
            f"{path}: written by a newer steerlab (schema {version}; this one reads {SCHEMA_VERSION}); upgrade steerlab"
        )
    if version < SCHEMA_VERSION:
        missing = [v for v in range(version, SCHEMA_VERSION) if v not in MIGRATIONS]
        if missing:
            raise StoreSchemaError(
                f"{path}: feature database from an older steerlab (schema {version}; this one "
                f"reads {SCHEMA_VERSION}) and it cannot be migrated; rebuild it with "
                "'steerlab features build'"
            )
        if readonly:
            raise StoreSchemaError(
                f"{path}: feature database needs migrating from schema {version} to "
                f"{SCHEMA_VERSION}; open it once writable (or rebuild it)"
            )


def _create_tables(conn: sqlite3.Connection) -> None:
    # statement by statement: executescript() would commit the caller's transaction first
    for statement in TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)


def create(conn: sqlite3.Connection) -> None:
    _create_tables(conn)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def retired_tables(conn: sqlite3.Connection) -> list[str]:
    """The ``RETIRED_TABLES`` this file still holds (for the opener to drop, in a transaction)."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [t for t in RETIRED_TABLES if t in names]


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Apply every migration from ``version`` up, then add any table new in this version."""
    for v in range(version, SCHEMA_VERSION):
        MIGRATIONS[v](conn)
    _create_tables(conn)
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
