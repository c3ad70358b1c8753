"""Per-feature quantiles of nonzero activations in bounded memory, in one streaming pass.

``feature_scale`` (the "typical strong activation" of each latent) needs, e.g., the 0.99
quantile of each latent's nonzero activations over millions of tokens. Keeping the values is
out of the question and a per-feature reservoir estimates a tail quantile from a handful of
samples. Two bounded summaries per latent instead:

* its ``top`` largest values, exactly: a tail quantile of a rarely-firing latent (the hard
  case) is an order statistic among them, so it comes out exact, as torch.quantile would;
* a histogram over log-spaced bins (``bins_per_octave`` per factor of two) for latents that
  fire too often for that: the quantile is interpolated linearly inside its bin, within
  a fraction of a bin's width (2^(1/16) - 1 = 4.4% at the default resolution, typically
  <1%), and clamped to the latent's observed range.

Memory is d_sae x (n_bins + top) numbers whatever the number of tokens.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class FeatureQuantiles:
    """Streaming per-feature histogram of positive activation magnitudes."""

    def __init__(
        self,
        d_sae: int,
        *,
        min_value: float = 2.0**-20,
        max_value: float = 2.0**20,
        bins_per_octave: int = 16,
        top: int = 64,
        device: torch.device | str | None = None,
    ) -> None:
        self.d_sae = d_sae
        self.bins_per_octave = bins_per_octave
        self.log2_min = math.log2(min_value)
        octaves = math.log2(max_value) - self.log2_min
        self.n_bins = math.ceil(octaves * bins_per_octave)
        # int32 keeps 65k latents x 640 bins at ~170 MB; counts past 2^31 per bin are not
        # reachable in one pass over a realistic corpus.
        self.counts = torch.zeros(d_sae, self.n_bins, dtype=torch.int32, device=device)
        self.top = torch.full((d_sae, top), -math.inf, device=device)  # descending per row
        self.minimum = torch.full((d_sae,), math.inf, device=device)

    def _bin_index(self, values: Tensor) -> Tensor:
        pos = (torch.log2(values.float()) - self.log2_min) * self.bins_per_octave
        return pos.floor().clamp_(0, self.n_bins - 1).long()

    @torch.no_grad()
    def update(self, values: Tensor, features: Tensor) -> None:
        """Add observations: ``values[i] > 0`` seen on latent ``features[i]`` (both flat)."""
        keep = values > 0
        values, features = values[keep], features[keep]
        if values.numel() == 0:
            return
        flat = features.to(self.counts.device) * self.n_bins + self._bin_index(values).to(self.counts.device)
        self.counts.view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
        values, features = values.float().to(self.top.device), features.to(self.top.device)
        self.minimum.scatter_reduce_(0, features, values, reduce="amin")
        self._merge_top(values, features)

    def _merge_top(self, values: Tensor, features: Tensor) -> None:
        """Fold this batch's largest values per latent into ``self.top``."""
        m = self.top.shape[1]
        # Sort by (feature, value descending) and rank within each feature.
        order = torch.argsort(values, descending=True, stable=True)
        order = order[torch.argsort(features[order], stable=True)]
        feats, vals = features[order], values[order]
        counts = torch.bincount(feats, minlength=self.d_sae)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(feats.numel(), device=feats.device) - starts[feats]
        keep = rank < m
        block = torch.full_like(self.top, -math.inf)
        block[feats[keep], rank[keep]] = vals[keep]
        self.top = torch.cat([self.top, block], dim=1).topk(m, dim=1).values

    @property
    def totals(self) -> Tensor:
        """[d_sae] number of positive observations per latent."""
        return self.counts.sum(dim=1, dtype=torch.int64)

    @torch.no_grad()
    def quantile(self, q: float, default: float = 1.0) -> Tensor:
        """[d_sae] float32 estimate of each latent's q-quantile; ``default`` where never seen."""
        if not 0.0 < q <= 1.0:
            raise ValueError(f"quantile: q must be in (0, 1], got {q}")
        counts = self.counts.to(torch.float64)
        totals = counts.sum(dim=1)
        cum = counts.cumsum(dim=1)
        target = (q * totals).unsqueeze(1)
        # First bin whose cumulative count reaches the target rank.
        bin_idx = torch.searchsorted(cum, target).clamp_(max=self.n_bins - 1)
        below = torch.where(bin_idx > 0, cum.gather(1, (bin_idx - 1).clamp(min=0)), 0.0)
        in_bin = counts.gather(1, bin_idx).clamp(min=1.0)
        frac = ((target - below) / in_bin).clamp_(0.0, 1.0)
        lo_edge = torch.exp2(self.log2_min + bin_idx.to(torch.float64) / self.bins_per_octave)
        hi_edge = lo_edge * 2.0 ** (1.0 / self.bins_per_octave)
        # The extreme bins are only partly covered: interpolate over the observed range.
        lo_edge = torch.maximum(lo_edge, self.minimum.double().unsqueeze(1))
        hi_edge = torch.minimum(hi_edge, self.top[:, :1].double())
        result = (lo_edge + frac * (hi_edge - lo_edge)).squeeze(1).to(torch.float32)
        # Exact where the order statistics needed (torch.quantile's linear interpolation
        # between ranks) are among the kept top values.
        pos = (1.0 - q) * (totals - 1).clamp(min=0)  # 0-based rank from the top
        lo, hi = pos.floor().long(), pos.ceil().long()
        exact = hi < self.top.shape[1]
        m = self.top.shape[1] - 1
        v_lo = self.top.gather(1, lo.clamp(max=m).unsqueeze(1)).squeeze(1).double()
        v_hi = self.top.gather(1, hi.clamp(max=m).unsqueeze(1)).squeeze(1).double()
        exact_value = (v_lo + (pos - lo) * (v_hi - v_lo)).float()
        result = torch.where(exact, exact_value, result)
        return torch.where(totals > 0, result, torch.full_like(result, default))
