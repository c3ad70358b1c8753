"""Massive activations: residual-stream tokens that are attention sinks, not text.

Position 0 of every sequence is an attention sink with a residual norm orders of magnitude above the rest; the
harvester skips it. But where a 256-token window starts on a newline or a digit, SmolLM2 puts a second sink at
position 1 (~24,000 against a median of ~200 at layer 18), and such tokens are kept. One of them among 10,000
tokens holds most of the pooled variance: its squared reconstruction error is ~10,000x an ordinary token's, so it
dominates an FVU, a training loss, or the input scale the trainer derives from a batch's mean squared norm.

One definition for everyone: a token is massive when its norm is over ``factor`` times the median norm of the batch
it comes in; ``factor`` comes from ``STEERLAB_MASSIVE_FACTOR`` (default 10; 0 keeps every token). Harvest shards
stay raw (every token after position 0, as before, so older harvests stay usable) and count them (shard metadata
and manifest ``massive_tokens``, ``activations/harvest.py``); the readers leave them out: the SAE trainer
(``sae/train.py``: loss, input scale, logged FVU), ``sae eval`` (``sae/evals.py``: FVU, L0, dead) and the feature
database builder (``features/build.py``: no activations, so never a feature's example).
"""

from __future__ import annotations

import torch
from torch import Tensor

MASSIVE_FACTOR = 10.0
"""The default factor: ordinary tokens stay within ~3x of the median; sinks sit at ~100x."""


def massive_factor(factor: float | None = None) -> float:
    """``factor``, or ``STEERLAB_MASSIVE_FACTOR`` where it is None (0 or less: no token is massive)."""
    if factor is not None:
        return float(factor)
    from steerlab.settings import get_settings

    return float(get_settings().massive_factor)


def massive_mask(x: Tensor, factor: float | None = None) -> Tensor:
    """Bool ``[n]``: rows of ``x: [n, d]`` whose norm is over ``factor`` times the median row norm."""
    f = massive_factor(factor)
    if f <= 0 or x.shape[0] == 0:
        return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    norms = torch.cat([rows.float().norm(dim=-1) for rows in x.split(65_536)])  # bounded float32 copies
    return norms > f * norms.median()


def drop_massive(x: Tensor, factor: float | None = None) -> tuple[Tensor, int]:
    """``x`` without its massive rows, and how many were dropped."""
    mask = massive_mask(x, factor)
    dropped = int(mask.sum())
    return (x[~mask] if dropped else x), dropped


def count_massive(x: Tensor, factor: float | None = None) -> int:
    """How many rows of ``x`` are massive."""
    return int(massive_mask(x, factor).sum())
