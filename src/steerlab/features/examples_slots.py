"""Per-feature example slots kept by streaming top-k merges: top activations and a uniform sample.

Both are the same operation with a different score. The *top* table scores a candidate by its
activation and takes at most one per (feature, sequence), so the strongest contexts are distinct
texts. The *sample* table scores by a hash of (sequence, position, feature): keeping the highest
hashes is a uniform random sample without replacement (a priority reservoir) that depends only on
which tokens exist, so resuming a build, or batching it differently, picks the same tokens.
Quantile examples are drawn from that sample at the end (its order statistics follow the
feature's activation distribution).

Each slot stores the window around its token (feature activations as float16) at the moment it is
accepted; batches hold whole sequences, so the window is always at hand. Work per batch is
proportional to the candidates that beat a feature's current worst slot, which shrinks fast.
Memory: ``d_sae x slots x (window x 2 + 24)`` bytes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from steerlab.features.batch_codes import BatchCodes

FIELDS = ("score", "act", "seq", "pos", "start", "length", "window")


class SlotTable:
    """``slots`` best candidates per feature by ``score``; rows sorted best first; empty = -inf."""

    def __init__(self, d_sae: int, slots: int, width: int, after: int):
        self.d_sae, self.slots, self.width, self.after = d_sae, slots, width, after
        self.score = torch.full((d_sae, slots), float("-inf"), dtype=torch.float64)
        self.act = torch.zeros(d_sae, slots, dtype=torch.float32)
        self.seq = torch.full((d_sae, slots), -1, dtype=torch.int64)
        self.pos = torch.zeros(d_sae, slots, dtype=torch.int32)
        self.start = torch.zeros(d_sae, slots, dtype=torch.int32)
        self.length = torch.zeros(d_sae, slots, dtype=torch.int16)
        self.window = torch.zeros(d_sae, slots, width, dtype=torch.float16)

    def state_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in FIELDS}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for name in FIELDS:
            getattr(self, name).copy_(state[name])

    def offer(
        self, codes: BatchCodes, idx: Tensor, scores: Tensor, one_per_sequence: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Consider nonzero codes ``idx`` (indices into ``codes.values``) with selection ``scores``;
        returns (feature, batch row, slot) of the candidates that took a slot."""
        feats = codes.cols[idx]
        better = scores > self.score[feats, -1]
        idx, feats, scores = idx[better], feats[better], scores[better]
        if idx.numel() == 0:
            return feats, idx, idx
        if one_per_sequence:  # keep each (feature, sequence)'s best token only
            key = feats * (int(codes.seq_of_row.max()) + 1) + codes.seq_of_row[codes.rows[idx]]
            by_key = _lexsort(-scores, key)
            sorted_key = key[by_key]
            first = torch.ones_like(sorted_key, dtype=torch.bool)
            first[1:] = sorted_key[1:] != sorted_key[:-1]
            best = by_key[first]
            idx, feats, scores = idx[best], feats[best], scores[best]
        order = _lexsort(-scores, feats)  # by feature, best first within it
        idx, feats, scores = idx[order], feats[order], scores[order]
        counts = torch.bincount(feats, minlength=self.d_sae)
        rank = torch.arange(feats.numel()) - (torch.cumsum(counts, 0) - counts)[feats]
        keep = rank < self.slots
        idx, feats, scores, rank = idx[keep], feats[keep], scores[keep], rank[keep]
        touched, inverse = torch.unique_consecutive(feats, return_inverse=True)
        block = torch.full((len(touched), self.slots), float("-inf"), dtype=torch.float64)
        block_idx = torch.full((len(touched), self.slots), -1, dtype=torch.int64)
        block[inverse, rank] = scores
        block_idx[inverse, rank] = idx
        merged, pick = torch.cat([self.score[touched], block], 1).topk(self.slots, dim=1)
        from_new = (pick >= self.slots) & (merged > float("-inf"))
        keep_old = torch.where(pick >= self.slots, 0, pick)
        for name in FIELDS[1:]:  # reorder surviving old slots
            table = getattr(self, name)
            table[touched] = table[touched].gather(1, _expand(keep_old, table))
        self.score[touched] = merged
        rows_t, cols_t = from_new.nonzero(as_tuple=True)
        new_idx = block_idx[rows_t, pick[rows_t, cols_t] - self.slots]
        self._fill(codes, touched[rows_t], cols_t, new_idx)
        return touched[rows_t], codes.rows[new_idx], cols_t

    def _fill(self, codes: BatchCodes, feats: Tensor, slot: Tensor, idx: Tensor) -> None:
        rows = codes.rows[idx]
        first, length, window = codes.window_acts(rows, feats, self.width, self.after)
        pos = codes.batch.pos
        self.act[feats, slot] = codes.values[idx]
        self.seq[feats, slot] = codes.seq_of_row[rows]
        self.pos[feats, slot] = pos[rows].int()
        self.start[feats, slot] = pos[first].int()
        self.length[feats, slot] = length.to(torch.int16)
        self.window[feats, slot] = window.half()

    def filled(self, feature: int) -> list[int]:
        """Slot numbers in use for ``feature``, best first."""
        return [s for s in range(self.slots) if self.score[feature, s] > float("-inf")]


def _lexsort(minor: Tensor, major: Tensor) -> Tensor:
    """Stable order by ``major`` then ``minor`` (numpy: torch's CPU sort is slow on shared cores)."""
    return torch.from_numpy(np.lexsort((minor.numpy(), major.numpy())))


def _expand(index: Tensor, table: Tensor) -> Tensor:
    return index.view(*index.shape, *([1] * (table.dim() - 2))).expand(*index.shape, *table.shape[2:])
