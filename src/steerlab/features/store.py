"""The feature database: SAEs, features, examples and labels in SQLite; vectors in safetensors files.

One file (WAL mode, so readers never block the writer) that the CLI, the server and notebooks open
at once; a packaged copy opens read-only, even from a read-only folder. Every write is a transaction
and ``transaction()`` groups many writes into one, so a failed build or labeling run leaves what was
stored before untouched. Large dense arrays (decoder directions, label embeddings) live next to the
file in ``<db>.vectors/<sae>/<name>.safetensors``, written atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

from steerlab.errors import UnknownFeatureError
from steerlab.features import store_codec as codec
from steerlab.features import store_schema as schema_sql
from steerlab.features.schema import Feature, Label, SAEInfo
from steerlab.features.store_corpus import CorpusTables
from steerlab.features.store_queries import FeatureQueries
from steerlab.features.store_schema import (
    FeatureIndexError,
    StoreError,
    StoreSchemaError,
    UnknownSAEError,
)

__all__ = [
    "FeatureStore",
    "StoreError",
    "UnknownSAEError",
    "FeatureIndexError",
    "StoreSchemaError",
    "UnknownFeatureError",
]

_INSERT_EXAMPLE = (
    f"INSERT INTO examples (sae_key, idx, {', '.join(codec.EXAMPLE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (2 + len(codec.EXAMPLE_COLUMNS)))})"
)
_VECTOR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


class FeatureStore(FeatureQueries, CorpusTables):
    """A feature database file. Thread-safe (one connection behind a lock); use as a context manager."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path).expanduser()
        self.readonly = readonly
        self._lock = threading.RLock()
        self._depth = 0
        self._sae_cache: dict[str, tuple[int, SAEInfo]] = {}
        self._vocab_cache: dict[int, list[str] | None] = {}
        self._sequence_cache: dict[int, dict[int, bytes]] = {}
        self._uuid_cache: dict[str, dict[str, int]] = {}
        self._conn = self._connect()
        try:
            self._open_schema()
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ opening
    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.is_file():
                raise StoreError(f"{self.path}: no feature database there; build one with 'steerlab features build'")
            uri = f"file:{quote(str(self.path.resolve()))}"
            try:
                return self._probe(
                    sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
                )
            except sqlite3.OperationalError:
                # SQLite >= 3.22 reads a WAL database even where it cannot create the -shm index; an
                # older library (or an odd medium) refuses: read the file as an immutable snapshot.
                # A shipped database is compacted (no WAL), so the snapshot is the whole truth.
                return self._probe(
                    sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False, isolation_level=None)
                )
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder; give the path of a .db file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._probe(sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None))
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _probe(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        """Touch the file so that a foreign or corrupt one fails here, with its name in the message."""
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            raise
        except sqlite3.DatabaseError as err:
            conn.close()
            raise StoreSchemaError(f"{self.path}: not a feature database (not readable as SQLite: {err})") from None
        return conn

    def _open_schema(self) -> None:
        version = schema_sql.read_version(self._conn, str(self.path))
        if version is None:
            if self.readonly:
                raise StoreSchemaError(f"{self.path}: empty file, not a feature database")
            with self.transaction():
                schema_sql.create(self._conn)
            return
        schema_sql.check_version(version, str(self.path), self.readonly)
        if version < schema_sql.SCHEMA_VERSION:
            with self.transaction():
                schema_sql.migrate(self._conn, version)
        retired = [] if self.readonly else schema_sql.retired_tables(self._conn)
        if retired:
            with self.transaction():
                for table in retired:
                    self._conn.execute(f"DROP TABLE IF EXISTS {table}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, readonly={self.readonly})"

    # ------------------------------------------------------------- transactions
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes atomically; nests (inner blocks are savepoints). Holds the store's lock."""
        self._writable()
        with self._lock:
            depth = self._depth
            self._conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth = depth
                self._conn.execute("ROLLBACK" if depth == 0 else f"ROLLBACK TO sp{depth}")
                if depth:
                    self._conn.execute(f"RELEASE sp{depth}")
                self._sae_cache.clear()
                self._vocab_cache.clear()
                self._sequence_cache.clear()
                raise
            self._depth = depth
            self._conn.execute("COMMIT" if depth == 0 else f"RELEASE sp{depth}")

    def _writable(self) -> None:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")

    def compact(self) -> None:
        """Ready the file for shipping: merge the WAL, VACUUM, and leave WAL mode so a read-only copy
        needs no side files."""
        self._writable()
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA journal_mode = DELETE")

    # --------------------------------------------------------------------- SAEs
    def add_sae(self, info: SAEInfo) -> None:
        """Register (or update the description of) an SAE."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO saes (sae_id, info) VALUES (?, ?) ON CONFLICT (sae_id) DO UPDATE SET info = excluded.info",
                (info.sae_id, info.model_dump_json()),
            )
        self._sae_cache.pop(info.sae_id, None)

    def _sae(self, sae_id: str) -> tuple[int, SAEInfo]:
        cached = self._sae_cache.get(sae_id)
        if cached is None:
            with self._lock:
                row = self._conn.execute("SELECT sae_key, info FROM saes WHERE sae_id = ?", (sae_id,)).fetchone()
            if row is None:
                known = ", ".join(repr(s.sae_id) for s in self.list_saes()) or "none (run 'steerlab features build')"
                raise UnknownSAEError(f"unknown SAE {sae_id!r} in {self.path}; known: {known}")
            cached = self._sae_cache[sae_id] = (row[0], SAEInfo.model_validate_json(row[1]))
        return cached

    def get_sae(self, sae_id: str) -> SAEInfo:
        return self._sae(sae_id)[1]

    def list_saes(self) -> list[SAEInfo]:
        with self._lock:
            rows = self._conn.execute("SELECT info FROM saes ORDER BY sae_key").fetchall()
        return [SAEInfo.model_validate_json(r[0]) for r in rows]

    def _check_index(self, sae_id: str, index) -> int:
        info = self.get_sae(sae_id)
        if isinstance(index, bool) or not isinstance(index, int) and not hasattr(index, "__index__"):
            raise FeatureIndexError(f"feature index must be an integer, got {index!r}")
        index = int(index)
        if not 0 <= index < info.d_sae:
            raise FeatureIndexError(
                f"feature {index} does not exist in SAE {sae_id!r}: index must be in 0..d_sae-1 = 0..{info.d_sae - 1}"
            )
        return index

    # ---------------------------------------------------------------- features
    def put_feature(self, f: Feature) -> None:
        self.put_features([f])

    def put_features(self, fs: Sequence[Feature], *, replace_examples: bool = False) -> None:
        """Upsert features in one transaction. Fields left empty (None stats, no examples, no effects,
        no co-firing, no label) keep what is stored, so a record read without examples can be written
        back safely; ``replace_examples`` (a rebuild) replaces the examples even with none."""
        with self.transaction():
            for f in fs:
                self._put(f, replace_examples)

    def _put(self, f: Feature, replace_examples: bool = False) -> None:
        key, _ = self._sae(f.sae_id)
        index = self._check_index(f.sae_id, f.index)
        stats = f.stats.model_dump_json() if f.stats is not None else None
        vocab = self._vocab(key)
        effects = [codec.effects_json(effs, vocab) for effs in (f.promoted, f.suppressed)]
        cofiring = codec.dumps([list(c) for c in f.cofiring]) if f.cofiring else None
        self._conn.execute(
            "INSERT INTO features (sae_key, idx, stats, promoted, suppressed, cofiring) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (sae_key, idx) DO UPDATE SET stats = coalesce(excluded.stats, stats), "
            "promoted = coalesce(excluded.promoted, promoted), suppressed = coalesce(excluded.suppressed, "
            "suppressed), cofiring = coalesce(excluded.cofiring, cofiring)",
            (key, index, stats, *effects, cofiring),
        )
        if f.examples or replace_examples:
            self._conn.execute("DELETE FROM examples WHERE sae_key = ? AND idx = ?", (key, index))
            self._conn.executemany(
                _INSERT_EXAMPLE,
                [(key, index, *codec.example_row(e, vocab, self._sequence(key, e.sequence_id))) for e in f.examples],
            )
        if f.label is not None:
            self._write_label(key, index, f.label)

    def set_label(self, sae_id: str, index: int, label: Label | None) -> None:
        self.set_labels(sae_id, {index: label})

    def set_labels(self, sae_id: str, labels: dict[int, Label | None]) -> None:
        """Write labels (None = mark unlabeled) in one transaction."""
        key, _ = self._sae(sae_id)
        checked = {self._check_index(sae_id, i): lab for i, lab in labels.items()}
        with self.transaction():
            for index, label in checked.items():
                self._conn.execute("INSERT OR IGNORE INTO features (sae_key, idx) VALUES (?, ?)", (key, index))
                self._write_label(key, index, label)

    def _write_label(self, key: int, index: int, label: Label | None) -> None:
        values = (
            (None,) * 5
            if label is None
            else (label.text, label.explainer, label.score, label.scorer, codec.dumps(label.score_details))
        )
        self._conn.execute(
            "UPDATE features SET label_text = ?, label_explainer = ?, label_score = ?, "
            "label_scorer = ?, label_details = ? WHERE sae_key = ? AND idx = ?",
            (*values, key, index),
        )

    # ------------------------------------------------------------------ vectors
    def _vector_path(self, sae_id: str, name: str) -> Path:
        if not isinstance(name, str) or not _VECTOR_NAME.fullmatch(name):
            raise StoreError(f"vector name must match {_VECTOR_NAME.pattern}, got {name!r}")
        self._sae(sae_id)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", sae_id).strip("._")[:80]
        folder = f"{slug}-{hashlib.sha1(sae_id.encode()).hexdigest()[:8]}"
        return self.path.with_name(self.path.name + ".vectors") / folder / f"{name}.safetensors"

    def save_vectors(self, sae_id: str, name: str, tensor) -> None:
        """Write a dense array (e.g. decoder directions ``[d_sae, d_in]``) for the SAE, atomically."""
        import torch

        from steerlab.tensor_files import save_safetensors

        self._writable()
        path = self._vector_path(sae_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_safetensors({"vectors": torch.as_tensor(tensor)}, path, metadata={"sae_id": sae_id, "name": name})

    def load_vectors(self, sae_id: str, name: str, framework: str = "pt"):
        """The stored tensor, or None when there is none: a torch tensor, or a numpy array with ``framework="np"``
        (which needs no torch, for readers such as a one-off ``steerlab features search``)."""
        from safetensors import SafetensorError, safe_open

        path = self._vector_path(sae_id, name)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework=framework) as fh:
                return fh.get_tensor("vectors")
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise StoreError(f"{path}: unreadable vectors file ({str(err).splitlines()[0]})") from None
