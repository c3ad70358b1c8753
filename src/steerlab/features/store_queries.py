"""Read paths of the feature store: lookups by index, paging and labels.

Kept apart from ``store.py`` (opening, schema, writes) so each file stays readable; these methods
only use the connection, lock and helpers that ``FeatureStore`` defines.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from steerlab.errors import InvalidInputError, UnknownFeatureError
from steerlab.features import store_codec as codec
from steerlab.features.schema import Example, Feature, FeatureStats, Label, feature_uuid

_FEATURE_COLUMNS = (
    "idx, stats, promoted, suppressed, cofiring, label_text, label_explainer, label_score, label_scorer, label_details"
)
_EXAMPLE_COLUMNS = "idx, " + ", ".join(codec.EXAMPLE_COLUMNS)
_KIND_ORDER = {"top": 0, "quantile": 1, "random": 2, "nonactivating": 3}
_CHUNK = 500  # SQLite's bound-parameter limit is 999 on old builds


class FeatureQueries:
    """Mixin: the read-only half of ``FeatureStore``."""

    def get_feature(self, sae_id: str, index: int, with_examples: bool = True) -> Feature:
        """The feature (an empty record if the index is valid but nothing is stored for it yet);
        examples come grouped by kind (top, quantile, random, nonactivating), each by rank."""
        return self.get_features(sae_id, [index], with_examples=with_examples)[0]

    def get_features(self, sae_id: str, indices: Sequence[int], with_examples: bool = False) -> list[Feature]:
        """Features in the order given (repeats allowed)."""
        key, _ = self._sae(sae_id)
        wanted = [self._check_index(sae_id, i) for i in indices]
        unique = sorted(set(wanted))
        rows, examples = {}, {}
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in self._conn.execute(
                    f"SELECT {_FEATURE_COLUMNS} FROM features WHERE sae_key = ? AND idx IN ({marks})", (key, *chunk)
                ):
                    rows[row[0]] = row
                if with_examples:
                    cursor = self._conn.execute(
                        f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE sae_key = ? AND idx IN ({marks})", (key, *chunk)
                    )
                    self._collect_examples(key, cursor, examples)
        return [
            self._feature_from_row(sae_id, rows[i], examples.get(i, []))
            if i in rows
            else Feature(uuid=feature_uuid(sae_id, i), sae_id=sae_id, index=i)
            for i in wanted
        ]

    def top_examples(self, sae_id: str, indices: Sequence[int], limit: int) -> dict[int, list[Example]]:
        """Each feature's ``limit`` strongest stored examples (kind ``top``, by rank), decoding nothing else: what a
        search hit shows as its evidence, ~10x cheaper than the feature with every example."""
        key, _ = self._sae(sae_id)
        unique = sorted({self._check_index(sae_id, i) for i in indices})
        examples: dict[int, list[Example]] = {}
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                cursor = self._conn.execute(
                    f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE sae_key = ? AND kind = 'top' AND rank < ? "
                    f"AND idx IN ({marks})",
                    (key, int(limit), *chunk),
                )
                self._collect_examples(key, cursor, examples)
        return examples

    def iter_features(self, sae_id: str, with_examples: bool = True, batch_size: int = 256) -> Iterator[Feature]:
        """Every stored feature in index order, ``batch_size`` rows in memory at a time."""
        key, _ = self._sae(sae_id)
        if batch_size < 1:
            raise InvalidInputError(f"must be >= 1, got {batch_size}", field="batch_size")
        after = -1
        while True:
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT {_FEATURE_COLUMNS} FROM features WHERE sae_key = ? AND idx > ? ORDER BY idx LIMIT ?",
                    (key, after, batch_size),
                ).fetchall()
                examples: dict[int, list[Example]] = {}
                if rows and with_examples:
                    cursor = self._conn.execute(
                        f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE sae_key = ? AND idx BETWEEN ? AND ?",
                        (key, rows[0][0], rows[-1][0]),
                    )
                    self._collect_examples(key, cursor, examples)
            if not rows:
                return
            for row in rows:
                yield self._feature_from_row(sae_id, row, examples.get(row[0], []))
            after = rows[-1][0]

    def _collect_examples(self, key: int, cursor, out: dict[int, list[Example]]) -> None:
        vocab = self._vocab(key)
        for row in cursor:
            out.setdefault(row[0], []).append(
                codec.example_from_row(row[1:], vocab, lambda seq: self._sequence(key, seq))
            )
        for examples in out.values():
            examples.sort(key=lambda e: (_KIND_ORDER.get(e.kind, 9), e.rank))

    def examples_digest(self, sae_id: str, kind: str = "top") -> str:
        """sha256 of the stored rows of one kind of example (raw columns, no decoding: ~0.2 s for 110k rows),
        so a cache of something computed from them knows when a rebuild changed them."""
        import hashlib

        key, _ = self._sae(sae_id)
        digest = hashlib.sha256(sae_id.encode())
        with self._lock:
            for row in self._conn.execute(
                f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE sae_key = ? AND kind = ? ORDER BY idx, rank",
                (key, kind),
            ):
                digest.update(repr(row).encode())
        return digest.hexdigest()

    def count_features(self, sae_id: str) -> int:
        key, _ = self._sae(sae_id)
        with self._lock:
            return self._conn.execute(
                "SELECT count(*) FROM features WHERE sae_key = ? AND stats IS NOT NULL", (key,)
            ).fetchone()[0]

    def stats(self, sae_id: str) -> dict[int, FeatureStats]:
        """Every feature's statistics (density, quantiles, ...) by index, without the rest of its row:
        what ranking by specificity needs (``features.specificity``), in one query."""
        key, _ = self._sae(sae_id)
        with self._lock:
            rows = self._conn.execute(
                "SELECT idx, stats FROM features WHERE sae_key = ? AND stats IS NOT NULL", (key,)
            ).fetchall()
        return {idx: FeatureStats.model_validate_json(stats) for idx, stats in rows}

    def labels(self, sae_id: str) -> dict[int, Label]:
        key, _ = self._sae(sae_id)
        with self._lock:
            rows = self._conn.execute(
                "SELECT idx, label_text, label_explainer, label_score, label_scorer, "
                "label_details FROM features WHERE sae_key = ? AND label_text IS NOT NULL "
                "ORDER BY idx",
                (key,),
            ).fetchall()
        return {
            idx: Label(
                text=text,
                explainer=explainer or "",
                score=score,
                scorer=scorer,
                score_details=codec.loads(details) or {},
            )
            for idx, text, explainer, score, scorer, details in rows
        }

    def get_feature_by_uuid(self, uuid: str, with_examples: bool = True) -> Feature:
        for info in self.list_saes():
            table = self._uuid_cache.get(info.sae_id)
            if table is None:
                table = self._uuid_cache[info.sae_id] = {feature_uuid(info.sae_id, i): i for i in range(info.d_sae)}
            if uuid in table:
                return self.get_feature(info.sae_id, table[uuid], with_examples=with_examples)
        raise UnknownFeatureError(f"no feature with uuid {uuid!r} in {self.path}")

    def _feature_from_row(self, sae_id: str, row, examples) -> Feature:
        idx, stats, promoted, suppressed, cofiring, text, explainer, score, scorer, details = row
        label = (
            None
            if text is None
            else Label(
                text=text,
                explainer=explainer or "",
                score=score,
                scorer=scorer,
                score_details=codec.loads(details) or {},
            )
        )
        vocab = self._vocab(self._sae(sae_id)[0])
        return Feature(
            uuid=feature_uuid(sae_id, idx),
            sae_id=sae_id,
            index=idx,
            stats=None if stats is None else FeatureStats.model_validate_json(stats),
            examples=examples,
            label=label,
            promoted=codec.effects_from_json(promoted, vocab),
            suppressed=codec.effects_from_json(suppressed, vocab),
            cofiring=[(int(i), float(v)) for i, v in codec.loads(cofiring) or []],
        )
