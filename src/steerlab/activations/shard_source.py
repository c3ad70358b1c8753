"""Stream harvested shards to the trainer in a seeded, shuffled, resumable order with bounded memory.

The stream is: shards in a seed-permuted order, read ``shards_in_memory`` at a time, the tokens of
each group permuted by (seed, group). It is a pure function of the seed, so skipping ``start_token``
tokens reproduces exactly the batches an uninterrupted run would have seen after that point.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open

from steerlab.activations.harvest import HarvestError, shard_path


class ShardActivationSource:
    def __init__(self, harvest_dir: str | Path, shards: list[int] | None = None, shards_in_memory: int = 8,
                 epochs: int = 1):
        self.dir = Path(harvest_dir)
        manifest_path = self.dir / "manifest.json"
        if not manifest_path.exists():
            raise HarvestError(f"{self.dir} is not a harvest folder (no manifest.json)")
        self.manifest = json.loads(manifest_path.read_text())
        available = [i for i in range(self.manifest["num_shards"]) if shard_path(self.dir, i).exists()]
        self.shards = available if shards is None else [i for i in shards if i in set(available)]
        if not self.shards:
            raise HarvestError(f"{self.dir} has no finished shards to read")
        self.shards_in_memory = shards_in_memory
        self.epochs = epochs
        self.sizes = {i: self._size(i) for i in self.shards}
        self.d_in = int(self.manifest["d_model"])
        self.hookpoint = self.manifest["hookpoint"]

    def _size(self, i: int) -> int:
        with safe_open(str(shard_path(self.dir, i)), framework="pt") as f:
            return f.get_slice("acts").get_shape()[0]

    @property
    def num_tokens(self) -> int:
        return self.epochs * sum(self.sizes.values())

    def load_shard(self, i: int) -> dict[str, torch.Tensor]:
        with safe_open(str(shard_path(self.dir, i)), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}

    def _groups(self, seed: int) -> Iterator[list[int]]:
        for epoch in range(self.epochs):
            g = torch.Generator().manual_seed(seed * 7919 + epoch)
            order = [self.shards[j] for j in torch.randperm(len(self.shards), generator=g).tolist()]
            for k in range(0, len(order), self.shards_in_memory):
                yield order[k:k + self.shards_in_memory]

    def iter_batches(self, batch_size: int, start_token: int = 0, seed: int = 0) -> Iterator[torch.Tensor]:
        """Float32 batches [batch_size, d_in]; the last partial batch of the stream is dropped."""
        skip = start_token
        carry: torch.Tensor | None = None
        for gi, group in enumerate(self._groups(seed)):
            n = sum(self.sizes[i] for i in group)
            if skip >= n:
                skip -= n
                continue
            acts = torch.cat([self.load_shard(i)["acts"] for i in group])
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 104729 + gi))
            acts = acts[perm[skip:]].float()
            skip = 0
            if carry is not None:
                acts = torch.cat([carry, acts])
            full = len(acts) // batch_size * batch_size
            yield from acts[:full].split(batch_size)
            carry = acts[full:] if full < len(acts) else None
