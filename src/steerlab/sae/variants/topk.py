"""TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"), the default.

Sparsity is set directly by k, so there is no penalty to tune and no shrinkage. Latents that
stop firing are revived by the auxiliary "AuxK" loss: the top-k_aux *dead* latents must
reconstruct what the live ones missed (as in EleutherAI sparsify). Training runs on the
sparse codes only (see ``kernels``): the encoder matmul is the one dense operation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from steerlab.sae.base import SAE, SAEOutput
from steerlab.sae.kernels import SparseCodes, select_preacts, sparse_decode
from steerlab.sae.registry import register


@register("topk")
class TopKSAE(SAE):
    """ReLU of the k largest pre-activations per token; every other latent is zero."""

    def encode(self, x: Tensor) -> Tensor:
        pre = self.pre_acts(x)
        values, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, idx, values.relu())

    @torch.no_grad()
    def sparse_encode(self, x: Tensor) -> SparseCodes:
        pre = self.pre_acts(x.reshape(-1, self.cfg.d_in))
        values, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return SparseCodes.from_topk(values.relu(), idx, self.cfg.d_sae)

    def _select(self, x: Tensor, pre: Tensor) -> SparseCodes:
        """Training-time codes: which latents fire (per this variant), as SparseCodes whose
        values carry gradients to the encoder."""
        _, idx = pre.topk(self.cfg.k, dim=-1, sorted=False)
        codes = SparseCodes.from_topk(pre.new_empty(0), idx, self.cfg.d_sae)
        return self._with_grad_values(x, pre, codes)

    def _with_grad_values(self, x: Tensor, pre: Tensor, codes: SparseCodes) -> SparseCodes:
        values = select_preacts(x, self.W_enc, self.b_enc, self.b_dec, pre, codes)
        return codes.with_values(F.relu(values))

    def forward(self, x: Tensor, dead_mask: Tensor | None = None, *, dense_latents: bool = True) -> SAEOutput:
        shape = x.shape
        x = x.reshape(-1, self.cfg.d_in).to(self.W_enc.dtype)
        with torch.no_grad():  # [tokens, d_sae]; gradients reach the encoder via select_preacts
            pre = self.pre_acts(x, workspace=self.training)
        codes = self._select(x, pre)
        recon = sparse_decode(codes, self.W_dec) + self.b_dec
        aux = self.auxk_loss(x, recon, pre, dead_mask)
        return self._output(x, recon, codes=codes, aux_loss=aux, dense_latents=dense_latents, shape=shape)

    def auxk_loss(self, x: Tensor, recon: Tensor, pre: Tensor, dead_mask: Tensor | None) -> Tensor:
        """Reconstruct the residual ``x - recon`` from the top-k_aux dead latents' pre-acts
        (k_aux = d_in / 2, scaled down when few are dead), normalized like FVU."""
        zero = recon.new_zeros((), dtype=torch.float32)
        if dead_mask is None or not torch.is_grad_enabled():
            return zero
        dead = dead_mask.nonzero().squeeze(1)
        num_dead = dead.numel()
        if num_dead == 0:
            return zero
        k_aux = self.cfg.d_in // 2
        scale = min(num_dead / k_aux, 1.0)
        k_aux = min(k_aux, num_dead)
        dead_pre = pre if num_dead == self.cfg.d_sae else pre.index_select(1, dead)
        _, local = dead_pre.topk(k_aux, dim=-1, sorted=False)
        idx = local if num_dead == self.cfg.d_sae else dead[local]
        codes = SparseCodes.from_topk(pre.new_empty(0), idx, self.cfg.d_sae)
        # No ReLU here: dead latents usually sit below zero, and the point is to move them.
        values = select_preacts(x, self.W_enc, self.b_enc, self.b_dec, pre, codes)
        residual_hat = sparse_decode(codes.with_values(values), self.W_dec)
        residual = (x - recon).detach()
        return scale * (residual_hat.float() - residual.float()).pow(2).sum() / self.total_variance(x)
