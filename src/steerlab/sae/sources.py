"""Where the trainer's activations come from: a tiny protocol plus an in-memory source.

The trainer only ever asks for "batches of the seeded stream, starting at token N". Making
the stream a pure function of (seed, start_token) is what lets a killed run resume onto
exactly the batches it would have seen. On-disk shards implement the same protocol in
``steerlab.activations``; ``TensorActivationSource`` serves tensors (tests, benchmarks,
notebooks).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from steerlab.errors import InvalidInputError


@runtime_checkable
class ActivationSource(Protocol):
    """A finite, seeded stream of activation vectors."""

    @property
    def num_tokens(self) -> int:
        """Length of the stream (all epochs)."""
        ...

    @property
    def d_in(self) -> int:
        """Width of each activation vector."""
        ...

    def iter_batches(self, batch_size: int, start_token: int = 0, seed: int = 0) -> Iterator[Tensor]:
        """Float32 [batch_size, d_in] batches of the stream from ``start_token`` on; a pure
        function of (seed, start_token). A final partial batch is dropped."""
        ...


class TensorActivationSource:
    """Serve a [tokens, d_in] tensor (or array) as a shuffled stream, ``epochs`` times over.

    Epoch e is a permutation drawn from (seed, e); the stream is the epochs back to back,
    so batches may straddle an epoch boundary and every batch is full.
    """

    def __init__(self, acts: Tensor | np.ndarray, epochs: int = 1) -> None:
        if isinstance(acts, np.ndarray):
            acts = torch.from_numpy(acts)
        if acts.ndim != 2:
            raise InvalidInputError(f"expected a [tokens, d_in] matrix, got shape {list(acts.shape)}", field="acts")
        if epochs < 1:
            raise InvalidInputError(f"must be >= 1, got {epochs}", field="epochs")
        self.acts = acts
        self.epochs = epochs

    @property
    def num_tokens(self) -> int:
        return self.epochs * self.acts.shape[0]

    @property
    def d_in(self) -> int:
        return self.acts.shape[1]

    def _permutation(self, seed: int, epoch: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        return torch.randperm(self.acts.shape[0], generator=generator)

    def iter_batches(self, batch_size: int, start_token: int = 0, seed: int = 0) -> Iterator[Tensor]:
        if batch_size < 1:
            raise InvalidInputError(f"must be >= 1, got {batch_size}", field="batch_size")
        n = self.acts.shape[0]
        position = max(start_token, 0)
        perms: dict[int, Tensor] = {}
        while position + batch_size <= self.num_tokens:
            parts = []
            need, pos = batch_size, position
            while need > 0:
                epoch, offset = divmod(pos, n)
                if epoch not in perms:
                    perms.clear()
                    perms[epoch] = self._permutation(seed, epoch)
                perm = perms[epoch]
                take = min(need, n - offset)
                parts.append(self.acts[perm[offset : offset + take]])
                need -= take
                pos += take
            yield (parts[0] if len(parts) == 1 else torch.cat(parts)).float()
            position += batch_size
