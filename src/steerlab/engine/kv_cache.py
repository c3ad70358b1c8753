"""Batch surgery on a transformers ``DynamicCache``: join sequences of different lengths, drop rows.

Continuous batching keeps one cache for every sequence being decoded. Sequences have different
lengths, so rows are left-padded with zeros whose attention-mask entries are 0: softmax gives them
exactly zero weight, so a row's result does not depend on its neighbours' lengths.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


def _layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's ``(keys, values)``; the engine's caches hold attention layers that a forward filled."""
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    for layer in cache.layers:
        assert isinstance(layer, DynamicLayer) and layer.keys is not None and layer.values is not None
        pairs.append((layer.keys, layer.values))
    return pairs


def _left_pad(t: torch.Tensor, length: int) -> torch.Tensor:
    """[batch, heads, seq, dim] -> [batch, heads, length, dim] with zeros in front."""
    missing = length - t.shape[2]
    if missing <= 0:
        return t
    return torch.cat([t.new_zeros(t.shape[0], t.shape[1], missing, t.shape[3]), t], dim=2)


def join(
    batch: DynamicCache | None, batch_mask: torch.Tensor | None, new: DynamicCache, new_mask: torch.Tensor
) -> tuple[DynamicCache, torch.Tensor]:
    """Append ``new``'s rows to ``batch``; returns the joined cache and attention mask [rows, seq]."""
    if batch is None or batch_mask is None or batch_mask.shape[0] == 0:
        return new, new_mask
    length = max(batch_mask.shape[1], new_mask.shape[1])
    data = []
    for (bk, bv), (nk, nv) in zip(_layers(batch), _layers(new)):
        data.append(
            (
                torch.cat([_left_pad(bk, length), _left_pad(nk, length)]),
                torch.cat([_left_pad(bv, length), _left_pad(nv, length)]),
            )
        )
    mask = torch.cat([_pad_mask(batch_mask, length), _pad_mask(new_mask, length)])
    return DynamicCache(ddp_cache_data=data), mask


def _pad_mask(mask: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - mask.shape[1]
    return mask if missing <= 0 else torch.cat([mask.new_zeros(mask.shape[0], missing), mask], dim=1)


def select(cache: DynamicCache, mask: torch.Tensor, rows: torch.Tensor) -> tuple[DynamicCache, torch.Tensor]:
    """Keep only ``rows``, then drop leading columns that every remaining row has masked out."""
    mask = mask[rows]
    valid = mask.any(dim=0).nonzero()
    start = int(valid[0]) if len(valid) else mask.shape[1]
    data = [(k[rows, :, start:], v[rows, :, start:]) for k, v in _layers(cache)]
    return DynamicCache(ddp_cache_data=data), mask[:, start:]
