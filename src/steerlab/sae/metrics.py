"""Activation-only quality metrics, shared by the trainer and the evals.

They need nothing but tensors (no model, no SAE object), so the same definitions score a
training batch, a held-out set, or an SAE imported from elsewhere.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fvu(x: Tensor, x_hat: Tensor) -> float:
    """Fraction of variance unexplained: sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over
    the batch (``x, x_hat: [..., d]``). 0 is perfect; 1 is no better than the mean."""
    x = x.reshape(-1, x.shape[-1]).double()
    x_hat = x_hat.reshape(-1, x_hat.shape[-1]).double()
    if x.shape != x_hat.shape:
        raise ValueError(f"fvu: shapes differ, x {list(x.shape)} vs x_hat {list(x_hat.shape)}")
    total = (x - x.mean(dim=0)).pow(2).sum()
    if total == 0:
        raise ValueError("fvu: x has zero variance (need at least two distinct rows)")
    return float((x - x_hat).pow(2).sum() / total)


def l0(f: Tensor) -> float:
    """Mean number of nonzero latents per token of ``f: [..., d_sae]``."""
    f = f.reshape(-1, f.shape[-1])
    return float((f != 0).sum(dim=-1).double().mean())


def dead_fraction(fired_counts: Tensor) -> float:
    """Fraction of latents that never fired: ``fired_counts: [d_sae]`` holds how often each
    latent was active over some window of tokens."""
    if fired_counts.numel() == 0:
        raise ValueError("dead_fraction: empty fired_counts")
    return float((fired_counts == 0).double().mean())


class RunningFVU:
    """FVU over a stream of batches, with the variance taken around the stream's mean
    (not each batch's): accumulates sum x, sum x^2 and the squared error in float64."""

    def __init__(self) -> None:
        self.n = 0
        self.sum_x: Tensor | None = None
        self.sum_sq = 0.0
        self.err = 0.0

    @torch.no_grad()
    def update(self, x: Tensor, x_hat: Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).double()
        x_hat = x_hat.reshape(-1, x.shape[-1]).double()
        self.n += x.shape[0]
        self.sum_x = x.sum(dim=0) if self.sum_x is None else self.sum_x + x.sum(dim=0)
        self.sum_sq += float(x.pow(2).sum())
        self.err += float((x - x_hat).pow(2).sum())

    def compute(self) -> float:
        if self.sum_x is None or self.n < 2:
            raise ValueError("RunningFVU: need at least two tokens")
        total = self.sum_sq - float(self.sum_x.pow(2).sum()) / self.n
        return self.err / total if total > 0 else float("inf")
