"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction
Fidelity with JumpReLU Sparse Autoencoders"; the Gemma Scope architecture).

Each latent passes its pre-activation only above a learned threshold, which removes the
shrinkage of ReLU+L1 and lets the SAE pay for L0 directly. The step function has zero
gradient almost everywhere, so thresholds learn through straight-through estimators: the
derivative of the step is replaced by a rectangle kernel of width ``jumprelu_bandwidth``
around the threshold (for both the reconstruction and the L0 penalty).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from steerlab.sae.base import SAE, SAEOutput
from steerlab.sae.config import SAEConfig
from steerlab.sae.registry import register


def _rectangle(u: Tensor) -> Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """f = x * (x > t); d f/dx = 1[x > t], d f/dt = -(t / eps) K((x - t) / eps)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return x * (x > threshold)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # pyright: ignore[reportIncompatibleMethodOverride]  (torch's stub: *grad_outputs)
        x, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_x = (x > threshold) * grad
        grad_t = -(threshold / eps) * _rectangle((x - threshold) / eps) * grad
        return grad_x, grad_t.reshape(-1, threshold.shape[-1]).sum(0), None


class _Step(torch.autograd.Function):
    """H(x - t); d H/dt = -(1 / eps) K((x - t) / eps) (no gradient to x, as in the paper)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, threshold: Tensor, bandwidth: float) -> Tensor:
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:  # pyright: ignore[reportIncompatibleMethodOverride]  (torch's stub: *grad_outputs)
        x, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_t = -(1.0 / eps) * _rectangle((x - threshold) / eps) * grad
        return None, grad_t.reshape(-1, threshold.shape[-1]).sum(0), None


@register("jumprelu")
class JumpReLUSAE(SAE):
    """Per-latent threshold; loss = FVU + l0_coefficient * mean L0."""

    threshold: nn.Parameter

    def __init__(
        self, cfg: SAEConfig, *, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(cfg, device=device, generator=generator)
        self.threshold = nn.Parameter(
            torch.full((cfg.d_sae,), cfg.jumprelu_init_threshold, device=device, dtype=self.W_enc.dtype)
        )

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        super().reset_parameters(generator)
        if hasattr(self, "threshold"):
            self.threshold.fill_(self.cfg.jumprelu_init_threshold)

    def encode(self, x: Tensor) -> Tensor:
        pre = self.pre_acts(x)
        return pre.relu() * (pre > self.threshold)  # ReLU too, for imported negative thresholds

    def forward(self, x: Tensor, dead_mask: Tensor | None = None, *, dense_latents: bool = True) -> SAEOutput:
        shape = x.shape
        x = x.reshape(-1, self.cfg.d_in).to(self.W_enc.dtype)
        pre = self.pre_acts(x)
        eps = self.cfg.jumprelu_bandwidth
        f = _JumpReLU.apply(pre, self.threshold, eps)
        recon = self.decode(f)
        l0_smooth = _Step.apply(pre, self.threshold, eps).sum(dim=-1).mean()
        sparsity = self.cfg.l0_coefficient * l0_smooth.float()
        return self._output(x, recon, dense=f, sparsity_loss=sparsity, shape=shape)

    @torch.no_grad()
    def constrain_parameters(self) -> None:
        super().constrain_parameters()
        # Below zero the gate would pass negative pre-activations. Projecting (not clamping
        # in the graph) keeps the threshold's gradient alive at zero.
        self.threshold.clamp_(min=0.0)

    @torch.no_grad()
    def fold_input_scale(self, scale: float) -> None:
        super().fold_input_scale(scale)
        self.threshold.div_(scale)
