"""A shared pool of random context windows, for every feature's non-activating examples.

Explainers and scorers need contexts where a feature does *not* fire, to contrast with the ones
where it does. Storing random windows per feature would cost d_sae x n windows of work; instead the
build keeps one uniform sample of windows (one per sampled sequence, chosen by hash priority so a
resumed build picks the same ones) and, per window, the set of features that fire anywhere in it
(``[pool, d_sae]`` bools). Each feature then takes the first windows, in its own rotated order, in
which it is silent.
"""

from __future__ import annotations

import torch
from torch import Tensor

from steerlab.features.batch_codes import BatchCodes, mix_hash, uniform_priority

FIELDS = ("score", "seq", "start", "length", "active")
_SALT = 0x5EED


class ContextPool:
    def __init__(self, d_sae: int, size: int, width: int):
        self.d_sae, self.size, self.width = d_sae, size, width
        self.score = torch.full((size,), float("-inf"), dtype=torch.float64)
        self.seq = torch.full((size,), -1, dtype=torch.int64)
        self.start = torch.zeros(size, dtype=torch.int32)
        self.length = torch.zeros(size, dtype=torch.int16)
        self.active = torch.zeros(size, d_sae, dtype=torch.bool)

    def state_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name) for name in FIELDS}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for name in FIELDS:
            getattr(self, name).copy_(state[name])

    def offer(self, codes: BatchCodes) -> None:
        """Consider one window from each sequence of the batch."""
        if self.size == 0:
            return
        starts, ends = codes.seq_starts, codes.seq_ends
        seq_ids = codes.seq_of_row[starts]
        priority = uniform_priority(seq_ids, _SALT)
        better = priority > self.score.min()
        if not bool(better.any()):
            return
        starts, ends, seq_ids, priority = starts[better], ends[better], seq_ids[better], priority[better]
        room = (ends - starts - self.width + 1).clamp(min=1)
        first = starts + mix_hash(seq_ids, _SALT + 1) % room
        length = torch.minimum(ends - first, torch.tensor(self.width))
        candidates = {
            "score": priority,
            "seq": seq_ids,
            "start": codes.batch.pos[first].int(),
            "length": length.to(torch.int16),
            "active": codes.active_features(first, length),
        }
        merged, pick = torch.cat([self.score, priority]).topk(self.size)
        for name in FIELDS[1:]:
            both = torch.cat([getattr(self, name), candidates[name]])
            getattr(self, name).copy_(both[pick])
        self.score.copy_(merged)

    def silent_windows(self, feature: int, n: int) -> list[int]:
        """Up to ``n`` pool slots where ``feature`` never fires, in a feature-specific order."""
        filled = [p for p, score in enumerate(self.score.tolist()) if score > float("-inf")]
        if not filled:
            return []
        shift = int(mix_hash(torch.tensor(feature), _SALT + 2)) % len(filled)
        active = self.active[:, feature].tolist()
        return [p for p in filled[shift:] + filled[:shift] if not active[p]][:n]
