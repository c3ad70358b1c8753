"""BatchTopK SAE (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders").

Training keeps the k x batch largest activations over the whole batch instead of k per
token, so easy tokens use fewer latents and hard ones more, at the same average L0. A batch
is not available at inference, so a single global threshold, estimated during training as a
running mean of the smallest activation the batch kept, takes its place: at inference the
SAE is a JumpReLU with one shared threshold (and is exported to SAELens as exactly that).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from steerlab.sae.base import SAE
from steerlab.sae.config import SAEConfig
from steerlab.sae.kernels import SparseCodes
from steerlab.sae.registry import register
from steerlab.sae.variants.topk import TopKSAE

THRESHOLD_MOMENTUM = 0.99  # EMA over batches of the smallest kept activation


@register("batchtopk")
class BatchTopKSAE(TopKSAE):
    """TopK over the flattened batch in training; ``pre > threshold`` at inference."""

    threshold: Tensor

    def __init__(
        self, cfg: SAEConfig, *, device: torch.device | str | None = None, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(cfg, device=device, generator=generator)
        # float32 whatever the weights' dtype; a 0-d buffer so it travels with state_dict.
        # Negative means "not estimated yet".
        self.register_buffer("threshold", torch.full((), -1.0, device=device))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        super().reset_parameters(generator)
        if hasattr(self, "threshold"):
            self.threshold.fill_(-1.0)

    def _inference_threshold(self) -> Tensor:
        # Before any estimate the best we can do is a plain ReLU.
        return self.threshold.clamp_min(0.0).to(self.W_enc.dtype)

    def encode(self, x: Tensor) -> Tensor:
        pre = self.pre_acts(x)
        return pre * (pre > self._inference_threshold())

    @torch.no_grad()
    def sparse_encode(self, x: Tensor) -> SparseCodes:
        pre = self.pre_acts(x.reshape(-1, self.cfg.d_in))
        rows, cols = (pre > self._inference_threshold()).nonzero(as_tuple=True)
        return SparseCodes.from_rows(pre[rows, cols], rows, cols, pre.shape[0], self.cfg.d_sae)

    def _select(self, x: Tensor, pre: Tensor) -> SparseCodes:
        if not self.training:
            with torch.no_grad():
                rows, cols = (pre > self._inference_threshold()).nonzero(as_tuple=True)
            codes = SparseCodes.from_rows(pre.new_empty(0), rows, cols, pre.shape[0], self.cfg.d_sae)
            return self._with_grad_values(x, pre, codes)
        tokens, d_sae = pre.shape
        with torch.no_grad():
            kept, flat = pre.reshape(-1).topk(min(self.cfg.k * tokens, pre.numel()), sorted=False)
            flat = flat[kept > 0]  # BatchTopK keeps only positive activations
            flat, _ = flat.sort()  # row-major order for the sparse decode
            if flat.numel() > 0:
                self._update_threshold(kept[kept > 0].min())
        codes = SparseCodes.from_rows(pre.new_empty(0), flat // d_sae, flat % d_sae, tokens, d_sae)
        return self._with_grad_values(x, pre, codes)

    @torch.no_grad()
    def calibrate(self, acts: Iterable[Tensor]) -> None:
        """Threshold = mean over batches of the smallest activation batch-top-k keeps, on the
        final weights (the running estimate from training lags behind them)."""
        total, count = 0.0, 0
        for x in acts:
            pre = self.pre_acts(x.reshape(-1, self.cfg.d_in).to(self.W_enc.device))
            kept, _ = pre.reshape(-1).topk(min(self.cfg.k * pre.shape[0], pre.numel()), sorted=False)
            kept = kept[kept > 0]
            if kept.numel():
                total += float(kept.min())
                count += 1
        if count:
            self.threshold.fill_(total / count)

    @torch.no_grad()
    def _update_threshold(self, smallest_kept: Tensor) -> None:
        value = smallest_kept.float()
        if self.threshold < 0:
            self.threshold.copy_(value)
        else:
            self.threshold.mul_(THRESHOLD_MOMENTUM).add_((1 - THRESHOLD_MOMENTUM) * value)

    @torch.no_grad()
    def fold_input_scale(self, scale: float) -> None:
        SAE.fold_input_scale(self, scale)
        if self.threshold >= 0:
            self.threshold.div_(scale)
