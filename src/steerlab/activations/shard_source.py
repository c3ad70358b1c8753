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


def _manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.exists():
        raise HarvestError(f"{folder} is not a harvest folder (no manifest.json)")
    return json.loads(path.read_text())


class ShardActivationSource:
    """The finished shards of one or more harvest folders (same model and hookpoint) as one stream."""

    def __init__(self, harvest_dirs: str | Path | list[str | Path], shards_in_memory: int = 8, epochs: int = 1):
        dirs = [Path(d) for d in (harvest_dirs if isinstance(harvest_dirs, list) else [harvest_dirs])]
        manifests = [_manifest(d) for d in dirs]
        self.manifest = manifests[0]
        self.manifests = manifests
        for d, m in zip(dirs[1:], manifests[1:]):
            for key in ("model", "hookpoint", "d_model"):
                if m.get(key) != self.manifest.get(key):
                    raise HarvestError(
                        f"{d} was harvested with {key}={m.get(key)!r}, but {dirs[0]} with "
                        f"{self.manifest.get(key)!r}; train on harvests of one model and hookpoint"
                    )
        self.shards: list[Path] = [
            shard_path(d, i)
            for d, m in zip(dirs, manifests)
            for i in range(m["num_shards"])
            if shard_path(d, i).exists()
        ]
        if not self.shards:
            raise HarvestError(f"{', '.join(map(str, dirs))}: no finished shards to read")
        self.shards_in_memory = shards_in_memory
        self.epochs = epochs
        self.sizes = {p: self._size(p) for p in self.shards}
        self.d_in = int(self.manifest["d_model"])
        self.hookpoint = self.manifest["hookpoint"]

    @staticmethod
    def _size(path: Path) -> int:
        with safe_open(str(path), framework="pt") as f:
            return f.get_slice("acts").get_shape()[0]

    @property
    def num_tokens(self) -> int:
        return self.epochs * sum(self.sizes.values())

    @property
    def massive_tokens(self) -> int | None:
        """Massive activations (attention sinks past position 0) in one epoch of the harvests, as their manifests
        count them; None if a harvest was finished before the count existed (rerun its harvest command to add
        it). The shards keep these tokens; the trainer leaves them out (``activations/massive.py``)."""
        counts = [m.get("massive_tokens") for m in self.manifests]
        return None if any(c is None for c in counts) else sum(counts)

    @staticmethod
    def load_shard(path: Path) -> dict[str, torch.Tensor]:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}

    def _groups(self, seed: int) -> Iterator[list[Path]]:
        for epoch in range(self.epochs):
            g = torch.Generator().manual_seed(seed * 7919 + epoch)
            order = [self.shards[j] for j in torch.randperm(len(self.shards), generator=g).tolist()]
            for k in range(0, len(order), self.shards_in_memory):
                yield order[k : k + self.shards_in_memory]

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
