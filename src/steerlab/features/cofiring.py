"""Which features fire together with each feature, estimated from a sample, in bounded memory.

Exact counting is out of reach on a CPU: it is a ``d_sae x d_sae`` table (10^10 cells at 100k
latents) and ``tokens x k^2`` updates (4,096 per token at k=64, a thousand times the cost of the
encoder's top-k). Instead each feature's co-firing is measured on the tokens its uniform sample
(``SlotTable`` with hash priorities) accepts. A token that enters the sample of a feature that has
fired ``N`` times so far was kept with probability ``R/N`` (``R`` = sample size), so counting its
co-active features with weight ``N/R`` (Horvitz-Thompson) estimates the number of the feature's
firing tokens on which each partner fires, without bias. A feature is sampled about
``R * (1 + ln(N/R))`` times in all (R = 16 by default: the first places of the example sample),
so the work is a few hundred tokens per feature per corpus, whatever its size.

Per feature only the ``slots`` heaviest partners are kept (a heavy-hitters table): a partner that
drops out loses its weight, so small values are underestimates; the top of the list is what is
shown. The stored value is the estimated fraction of the feature's firing
tokens on which the partner also fires, as a ratio estimate (partner weight / the feature's total
sample weight), which cancels most of the weights' spread: its effective sample size is about
``2R`` (R=16: about +-9% at a 50% share).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from steerlab.features.batch_codes import BatchCodes


class CofiringCounter:
    def __init__(self, d_sae: int, slots: int = 32, flush_pairs: int = 2_000_000, chunk: int = 16_384):
        self.d_sae, self.slots, self.flush_pairs, self.chunk = d_sae, slots, flush_pairs, chunk
        self.partner = torch.full((d_sae, slots), -1, dtype=torch.int64)
        self.weight = torch.zeros(d_sae, slots, dtype=torch.float64)
        self.total = torch.zeros(d_sae, dtype=torch.float64)  # summed weight of each feature's samples
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def state_dict(self) -> dict[str, Tensor]:
        """The table (call ``flush`` first: pending pairs are not part of the state)."""
        return {"partner": self.partner, "weight": self.weight, "total": self.total}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.partner.copy_(state["partner"])
        self.weight.copy_(state["weight"])
        self.total.copy_(state["total"])
        self._pending, self._pending_size = [], 0

    @torch.no_grad()
    def update(self, codes: BatchCodes, owners: Tensor, rows: Tensor, fired: Tensor, sample_size: int) -> None:
        """Count the features active at batch ``rows[i]`` for feature ``owners[i]`` (a new sample of it).

        ``fired[f]``: firings of ``f`` up to the end of this batch (the sample is the top-``sample_size``
        priorities among them, so each was kept with probability ``sample_size / fired[f]``). Pairs are
        buffered and merged into the table every ``flush_pairs`` pairs (one sort per merge); samples are
        taken ``chunk`` at a time, so the first batches (where every firing is sampled) stay small too."""
        for at in range(0, owners.numel(), self.chunk):
            self._add(codes, owners[at : at + self.chunk], rows[at : at + self.chunk], fired, sample_size)

    def _add(self, codes: BatchCodes, owners: Tensor, rows: Tensor, fired: Tensor, sample_size: int) -> None:
        if self.slots == 0 or owners.numel() == 0:
            return
        self.total.index_add_(0, owners, (fired[owners].double() / sample_size).clamp(min=1.0))
        which, entry = codes.row_entries(rows, torch.ones_like(rows))
        owner, partner = owners[which], codes.cols[entry]
        other = owner != partner
        owner, partner = owner[other], partner[other]
        weight = (fired[owner].double() / sample_size).clamp(min=1.0)
        self._pending.append(((owner * self.d_sae + partner).numpy(), weight.numpy()))
        self._pending_size += len(owner)
        if self._pending_size >= self.flush_pairs:
            self.flush()

    def flush(self) -> None:
        """Merge the buffered pairs into the table (deterministic: same pairs, same table)."""
        if not self._pending:
            return
        held = (self.partner >= 0).numpy()
        held_owner = np.broadcast_to(np.arange(self.d_sae)[:, None], held.shape)[held]
        keys = np.concatenate([held_owner * self.d_sae + self.partner.numpy()[held]] + [k for k, _ in self._pending])
        values = np.concatenate([self.weight.numpy()[held]] + [w for _, w in self._pending])
        self._pending, self._pending_size = [], 0
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        starts = np.concatenate([[0], np.flatnonzero(keys[1:] != keys[:-1]) + 1])
        keys, summed = keys[starts], np.add.reduceat(values, starts)
        owner = keys // self.d_sae
        order = np.lexsort((-summed, owner))  # heaviest first per owner; ties keep partner order
        owner, keys, summed = owner[order], keys[order], summed[order]
        per_owner = np.bincount(owner, minlength=self.d_sae)
        rank = np.arange(len(owner)) - (np.cumsum(per_owner) - per_owner)[owner]
        keep = rank < self.slots
        self.partner.fill_(-1)
        self.weight.zero_()
        at = (torch.from_numpy(owner[keep]), torch.from_numpy(rank[keep]))
        self.partner[at] = torch.from_numpy(keys[keep] % self.d_sae)
        self.weight[at] = torch.from_numpy(summed[keep])

    def top(self, feature: int, n: int = 10) -> list[tuple[int, float]]:
        """(partner, estimated fraction of ``feature``'s firings it shares), most frequent first."""
        total = float(self.total[feature])
        if total <= 0:
            return []
        self.flush()
        return [
            (int(p), round(min(float(w) / total, 1.0), 4))
            for p, w in zip(self.partner[feature], self.weight[feature])
            if p >= 0 and w > 0
        ][:n]
