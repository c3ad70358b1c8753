"""The text side of a feature database: the model's vocabulary and the corpus sequences examples cut from.

Both exist to keep the file small without losing anything: token strings and token ids are stored
once per SAE, and examples and logit effects refer to them (see ``store_codec``). A sequence is read
from the database once and kept as packed bytes (2 bytes a token), so even a 10M-token build costs a
reader at most ~20 MB, and only when it shows examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from steerlab.features import store_codec as codec


class CorpusTables:
    """Mixin of ``FeatureStore``: vocabulary and sequences (uses its connection, lock and caches)."""

    def set_vocab(self, sae_id: str, tokens: Sequence[str]) -> None:
        """Token strings of the SAE's model by id: examples and effects whose strings match store ids only."""
        key, _ = self._sae(sae_id)
        with self.transaction():
            self._conn.execute("INSERT OR REPLACE INTO vocab VALUES (?, ?)", (key, codec.dumps(list(tokens))))
        self._vocab_cache[key] = list(tokens)

    def vocab(self, sae_id: str) -> list[str] | None:
        return self._vocab(self._sae(sae_id)[0])

    def _vocab(self, key: int) -> list[str] | None:
        if key not in self._vocab_cache:
            with self._lock:
                row = self._conn.execute("SELECT tokens FROM vocab WHERE sae_key = ?", (key,)).fetchone()
            self._vocab_cache[key] = codec.loads(row[0]) if row else None
        return self._vocab_cache[key]

    def put_sequences(self, sae_id: str, sequences: Mapping[int, Sequence[int]]) -> None:
        """Store (or replace) corpus sequences by id; examples with a matching ``sequence_id`` and
        ``start`` then store only that start."""
        key, _ = self._sae(sae_id)
        packed = {int(s): codec.pack_token_ids(list(ids)) for s, ids in sequences.items()}
        with self.transaction():
            self._conn.executemany(
                "INSERT OR REPLACE INTO sequences VALUES (?, ?, ?)", [(key, s, blob) for s, blob in packed.items()]
            )
            self._sequences_of(key).update(packed)

    def sequence_tokens(self, sae_id: str, sequence_id: int) -> list[int] | None:
        """Token ids of a stored sequence (None if it is not stored)."""
        return self._sequence(self._sae(sae_id)[0], sequence_id)

    def sequence_ids(self, sae_id: str) -> list[int]:
        """Ids of the stored corpus sequences, ascending."""
        return sorted(self._sequences_of(self._sae(sae_id)[0]))

    def _sequences_of(self, key: int) -> dict[int, bytes]:
        if key not in self._sequence_cache:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT sequence_id, token_ids FROM sequences WHERE sae_key = ?", (key,)
                ).fetchall()
            self._sequence_cache[key] = dict(rows)
        return self._sequence_cache[key]

    def _sequence(self, key: int, sequence_id: int | None) -> list[int] | None:
        blob = None if sequence_id is None else self._sequences_of(key).get(sequence_id)
        return None if blob is None else codec.unpack_token_ids(blob)
