"""One batch of tokens with its SAE codes, indexed for the lookups the builder needs.

Batches always hold whole sequences (the sources guarantee it), so the context window around any
token is inside the batch and the builder reads it at the moment it picks an example: no second
pass over the corpus (which would mean a second model forward for corpus builds). Codes are kept
sparse (``[nnz]`` triples) and sorted two ways, so a window's activations or its active features
are found by binary search: the cost is proportional to the active latents, never ``tokens x d_sae``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

_M32 = 0xFFFFFFFF


@dataclass
class TokenBatch:
    """Tokens of whole sequences, in sequence order: ``acts: [n, d_in]``, the rest ``[n]``."""

    acts: Tensor
    token_ids: Tensor
    seq: Tensor
    """Global sequence id (stable across runs: it names the sequence in the build corpus)."""
    pos: Tensor
    """Position within the sequence; positions of a sequence are consecutive."""

    def __len__(self) -> int:
        return int(self.seq.numel())


def mix_hash(*parts: Tensor | int) -> Tensor:
    """Deterministic 32-bit hash (murmur3 finalizer) of int64 tensors: the builder's only randomness,
    so sampling depends on *which* token it is, not on batching, and a resumed build is identical."""
    h = torch.zeros((), dtype=torch.int64)
    for salt, part in zip((0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F), parts):
        h = (h * 31 + torch.as_tensor(part, dtype=torch.int64) * salt) & _M32
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & _M32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


def uniform_priority(*parts: Tensor | int) -> Tensor:
    """Hash mapped to float64 in [0, 1)."""
    return mix_hash(*parts).double() / 2.0**32


class BatchCodes:
    """A TokenBatch plus its nonzero codes ``values/rows/cols`` (flat, ``values > 0``)."""

    def __init__(self, batch: TokenBatch, values: Tensor, rows: Tensor, cols: Tensor, d_sae: int):
        keep = values > 0
        self.batch, self.d_sae = batch, d_sae
        self.values, self.rows, self.cols = values[keep].float(), rows[keep].long(), cols[keep].long()
        n = len(batch)
        # codes come sorted by row (SparseCodes' invariant); a copy sorted by (col, row) reads one
        # feature along a window (numpy sort: torch's CPU sort is slow on shared cores)
        col_keys = self.cols * n + self.rows
        by_col = torch.from_numpy(np.argsort(col_keys.numpy(), kind="stable"))
        self._col_major_keys, self._col_major_values = col_keys[by_col], self.values[by_col]
        seq = batch.seq
        is_start = torch.ones(n, dtype=torch.bool)
        is_start[1:] = seq[1:] != seq[:-1]
        starts = is_start.nonzero().squeeze(1)
        group = torch.cumsum(is_start.long(), 0) - 1
        ends = torch.cat([starts[1:], torch.tensor([n])])
        self.seq_first_row = starts[group]  # [n] first row of each row's sequence
        self.seq_end_row = ends[group]  # [n] one past its last row
        self.seq_starts, self.seq_ends = starts, ends

    @property
    def seq_of_row(self) -> Tensor:
        return self.batch.seq

    def window_rows(self, rows: Tensor, width: int, after: int) -> tuple[Tensor, Tensor]:
        """(first row, length) of the window around each row: ``after`` tokens after it, the rest before
        (the residual stream only sees the past), shifted and cut to stay inside its sequence."""
        first = torch.maximum(rows - (width - 1 - after), self.seq_first_row[rows])
        end = torch.minimum(first + width, self.seq_end_row[rows])
        first = torch.maximum(torch.minimum(first, end - width), self.seq_first_row[rows])
        return first, end - first

    def window_acts(self, rows: Tensor, cols: Tensor, width: int, after: int) -> tuple[Tensor, Tensor, Tensor]:
        """(first row ``[c]``, length ``[c]``, activations ``[c, width]``) of feature ``cols[i]`` around ``rows[i]``.

        Two binary searches per window find the feature's nonzeros inside it; only those are copied."""
        first, length = self.window_rows(rows, width, after)
        n = len(self.batch)
        lo = torch.searchsorted(self._col_major_keys, cols * n + first)
        hi = torch.searchsorted(self._col_major_keys, cols * n + first + length)
        counts = hi - lo
        window_of = torch.repeat_interleave(torch.arange(len(rows)), counts)
        within = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        entry = lo[window_of] + within
        acts = torch.zeros(len(rows), width)
        acts[window_of, self._col_major_keys[entry] % n - first[window_of]] = self._col_major_values[entry]
        return first, length, acts

    def row_entries(self, first: Tensor, length: Tensor) -> tuple[Tensor, Tensor]:
        """(range number, code index) of every nonzero code in row ranges ``[first, first+length)``."""
        lo = torch.searchsorted(self.rows, first)
        hi = torch.searchsorted(self.rows, first + length)
        counts = hi - lo
        owner = torch.repeat_interleave(torch.arange(len(first)), counts)
        within = torch.arange(int(counts.sum())) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        return owner, lo[owner] + within

    def active_features(self, first: Tensor, length: Tensor) -> Tensor:
        """``[w, d_sae]`` bool: which features fire anywhere in each window ``[first, first+length)``."""
        out = torch.zeros(len(first), self.d_sae, dtype=torch.bool)
        owner, entry = self.row_entries(first, length)
        out[owner, self.cols[entry]] = True
        return out
