"""ReLU SAE with an L1 penalty (Bricken et al. 2023; Anthropic's April 2024 update).

The classic dictionary-learning baseline and SAELens's "standard" architecture. The L1
term is weighted by decoder row norms, so the penalty cannot be dodged by shrinking codes
while growing decoder rows; with our unit-norm decoder the weights are 1 but the loss stays
correct for imported SAEs. It is divided by the batch's RMS input norm so that
``l1_coefficient`` does not depend on the scale of the activations.
"""

from __future__ import annotations

from torch import Tensor

from steerlab.sae.base import SAE, SAEOutput
from steerlab.sae.registry import register


@register("relu")
class ReLUSAE(SAE):
    """Codes = ReLU(pre-activations); loss = FVU + l1_coefficient * L1(codes * |W_dec|)."""

    def encode(self, x: Tensor) -> Tensor:
        return self.pre_acts(x).relu()

    def forward(self, x: Tensor, dead_mask: Tensor | None = None, *, dense_latents: bool = True) -> SAEOutput:
        shape = x.shape
        x = x.reshape(-1, self.cfg.d_in).to(self.W_enc.dtype)
        f = self.pre_acts(x).relu()
        recon = self.decode(f)
        weighted_l1 = (f * self.W_dec.norm(dim=1)).sum(dim=-1).mean().float()
        rms_norm = self.total_variance(x).div(x.shape[0]).sqrt()
        sparsity = self.cfg.l1_coefficient * weighted_l1 / rms_norm
        return self._output(x, recon, dense=f, sparsity_loss=sparsity, shape=shape)
