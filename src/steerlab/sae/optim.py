"""The optimization recipe's small pieces: Adam, the learning-rate schedule, b_dec's init.

Kept apart from the training loop so each is testable alone and reusable by other trainers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from steerlab.sae.base import SAE


def lr_at(step: int, total_steps: int, lr: float, warmup_steps: int, decay: str, decay_fraction: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based): warmup, constant, decay to 0."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = round(decay_fraction * total_steps) if decay != "none" else 0
    start = total_steps - decay_steps
    if step < start or decay_steps == 0:
        return lr
    progress = (step - start + 1) / decay_steps
    if decay == "cosine":
        return lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr * (1.0 - progress)


@torch.no_grad()
def geometric_median(points: Tensor, iters: int = 50, tol: float = 1e-5) -> Tensor:
    """Weiszfeld's algorithm: the point minimizing the summed distance to ``points``.
    A robust center for b_dec (outlier tokens, like BOS, barely move it)."""
    points = points.double()
    guess = points.mean(dim=0)
    for _ in range(iters):
        weights = 1.0 / (points - guess).norm(dim=1).clamp_min(1e-8)
        new = (weights[:, None] * points).sum(dim=0) / weights.sum()
        done = (new - guess).norm() < tol * guess.norm().clamp_min(1.0)
        guess = new
        if done:
            break
    return guess.float()


def adam(sae: SAE, lr: float) -> torch.optim.Adam:
    """Adam over all parameters (sparsify's choice; no weight decay, no clipping)."""
    try:  # the fused kernel is several times faster on CPU and GPU where available
        return torch.optim.Adam(sae.parameters(), lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(sae.parameters(), lr=lr)
