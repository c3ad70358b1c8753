"""Turn a finished build state into ``Feature`` records, a chunk of features at a time.

Each chunk's rows of the state tensors are converted to Python lists once, so assembling ~30
examples per feature costs list lookups, not tensor indexing (which is ~1 us per element).
"""

from __future__ import annotations

from steerlab.features.build_state import FeatureAccumulator
from steerlab.features.examples_slots import FIELDS, SlotTable
from steerlab.features.schema import Example, Feature, TokenEffect, feature_uuid


def needed_sequences(acc: FeatureAccumulator, start: int, stop: int) -> set[int]:
    """Sequence ids whose tokens the examples of features ``start..stop-1`` show."""
    seqs = set()
    for table in (acc.top, acc.sample):
        block = table.seq[start:stop][table.score[start:stop] > float("-inf")]
        seqs.update(block.tolist())
    seqs.update(s for s in acc.pool.seq.tolist() if s >= 0)
    return seqs


class _Rows:
    """The rows ``offset..stop-1`` of a SlotTable as nested Python lists (``rows.act[j][slot]``...)."""

    def __init__(self, table: SlotTable, offset: int, stop: int):
        self.offset = offset
        self.score, self.act, self.seq, self.pos, self.first, self.length, self.window = (
            getattr(table, name)[offset:stop].tolist() for name in FIELDS
        )

    def filled(self, f: int) -> list[int]:
        """Slots in use for feature ``f``, best first."""
        return [s for s, score in enumerate(self.score[f - self.offset]) if score > float("-inf")]

    def example(
        self,
        f: int,
        s: int,
        kind: str,
        rank: int,
        tokens: dict[int, list[int]],
        vocab: list[str],
        quantile: float | None = None,
    ) -> Example:
        j = f - self.offset
        seq, first, n = self.seq[j][s], self.first[j][s], self.length[j][s]
        ids = tokens[seq][first : first + n]
        acts = self.window[j][s][:n]
        at = self.pos[j][s] - first
        acts[at] = self.act[j][s]  # the exact value (the window holds float16 copies)
        if kind != "top":  # a top token is its sequence's maximum; elsewhere the window may hold a stronger one
            at = max(range(n), key=lambda i: acts[i])
        return Example(
            kind=kind,
            rank=rank,
            quantile=quantile,
            tokens=[vocab[i] for i in ids],
            token_ids=ids,
            acts=acts,
            max_act=acts[at],
            max_position=at,
            sequence_id=seq,
            start=first,
        )


def quantile_picks(acts: list[float], buckets: int, per_bucket: int) -> list[tuple[int, float]]:
    """(position in ``acts``, bucket quantile) for examples spread over the activation distribution:
    sort the sample, cut it in equal-count buckets, take ``per_bucket`` from the middle of each."""
    order = sorted(range(len(acts)), key=lambda i: acts[i])
    n, picks = len(order), []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if hi <= lo:
            continue
        first = max(lo, (lo + hi - per_bucket) // 2)
        picks += [(order[j], round((b + 0.5) / buckets, 4)) for j in range(first, min(hi, first + per_bucket))]
    return picks


def feature_records(
    acc: FeatureAccumulator,
    sae_id: str,
    start: int,
    stop: int,
    tokens: dict[int, list[int]],
    vocab: list[str],
    effects: list[tuple[list[TokenEffect], list[TokenEffect]]],
) -> list[Feature]:
    """Records of features ``start..stop-1``. ``tokens`` maps the ``needed_sequences`` to their token
    ids; ``effects`` holds the features' (promoted, suppressed) lists in order."""
    cfg = acc.cfg
    stats = acc.stats.feature_stats(start, stop)
    top, sample = _Rows(acc.top, start, stop), _Rows(acc.sample, start, stop)
    pool_seq, pool_start, pool_length = acc.pool.seq.tolist(), acc.pool.start.tolist(), acc.pool.length.tolist()
    records = []
    for j, f in enumerate(range(start, stop)):
        examples = [top.example(f, s, "top", r, tokens, vocab) for r, s in enumerate(top.filled(f))]
        sampled = sample.filled(f)
        picks = quantile_picks([sample.act[j][s] for s in sampled], cfg.quantile_buckets, cfg.per_bucket)
        examples += [
            sample.example(f, sampled[p], "quantile", r, tokens, vocab, quantile=q) for r, (p, q) in enumerate(picks)
        ]
        for r, p in enumerate(acc.pool.silent_windows(f, cfg.nonactivating)):
            seq, first, n = pool_seq[p], pool_start[p], pool_length[p]
            ids = tokens[seq][first : first + n]
            examples.append(
                Example(
                    kind="nonactivating",
                    rank=r,
                    tokens=[vocab[i] for i in ids],
                    token_ids=ids,
                    acts=[0.0] * len(ids),
                    max_act=0.0,
                    max_position=0,
                    sequence_id=seq,
                    start=first,
                )
            )
        promoted, suppressed = effects[j]
        records.append(
            Feature(
                uuid=feature_uuid(sae_id, f),
                sae_id=sae_id,
                index=f,
                stats=stats[j],
                examples=examples,
                promoted=promoted,
                suppressed=suppressed,
                cofiring=acc.cofiring.top(f, cfg.cofiring_top),
            )
        )
    return records
