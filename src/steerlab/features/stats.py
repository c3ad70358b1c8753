"""Per-feature activation statistics in one streaming pass and fixed memory.

Counts, sums and maxima are exact. The distribution is a fixed-bin histogram per feature over
``[0, hi]`` (plus one overflow bin), where ``hi`` is twice the feature's typical strong activation
(``sae.feature_scale``, its 0.99 quantile measured after training) or, for an SAE without one, the
same quantile estimated from the first tokens of the build. Quantiles are interpolated inside their
bin, so they are accurate to a bin width (5% of ``hi`` with 40 bins); the overflow bin is spread
between ``hi`` and the exact maximum. Memory: ``d_sae x (bins + 1)`` int32 whatever the corpus size.
"""

from __future__ import annotations

import torch
from torch import Tensor

from steerlab.features.schema import FeatureStats, Histogram

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


class StatsAccumulator:
    """Density, max, mean, histogram and quantiles of every feature's nonzero activations."""

    def __init__(self, hist_hi: Tensor, bins: int = 40):
        self.d_sae = hist_hi.numel()
        self.bins = bins
        self.hist_hi = hist_hi.detach().float().cpu().clamp_min(1e-6)
        self.fire_count = torch.zeros(self.d_sae, dtype=torch.int64)
        self.act_sum = torch.zeros(self.d_sae, dtype=torch.float64)
        self.act_max = torch.zeros(self.d_sae, dtype=torch.float32)
        self.hist = torch.zeros(self.d_sae, bins + 1, dtype=torch.int32)
        self.tokens = torch.zeros((), dtype=torch.int64)

    def update(self, values: Tensor, cols: Tensor, n_tokens: int) -> None:
        """Add one batch: ``values[i] > 0`` of feature ``cols[i]`` (flat), over ``n_tokens`` tokens."""
        self.tokens += n_tokens
        self.fire_count += torch.bincount(cols, minlength=self.d_sae)
        self.act_sum.index_add_(0, cols, values.double())
        self.act_max.scatter_reduce_(0, cols, values, reduce="amax")
        bin_index = (values / self.hist_hi[cols] * self.bins).long().clamp_(0, self.bins)
        self.hist.view(-1).index_add_(0, cols * (self.bins + 1) + bin_index, torch.ones_like(cols, dtype=torch.int32))

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "hist_hi": self.hist_hi,
            "fire_count": self.fire_count,
            "act_sum": self.act_sum,
            "act_max": self.act_max,
            "hist": self.hist,
            "tokens": self.tokens,
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for name, value in state.items():
            getattr(self, name).copy_(value)

    def quantiles(self, qs: tuple[float, ...] = QUANTILES) -> Tensor:
        """``[d_sae, len(qs)]`` quantiles of nonzero activations (0 where a feature never fired)."""
        counts = self.hist.double()
        total = counts.sum(1, keepdim=True)
        cum = counts.cumsum(1)
        width = (self.hist_hi / self.bins).double().unsqueeze(1)
        out = []
        for q in qs:
            target = q * total
            b = torch.searchsorted(cum, target).clamp_(max=self.bins)
            below = torch.where(b > 0, cum.gather(1, (b - 1).clamp(min=0)), 0.0)
            frac = ((target - below) / counts.gather(1, b).clamp(min=1.0)).clamp(0.0, 1.0)
            lo = b.double() * width
            hi = torch.where(b < self.bins, lo + width, self.act_max.double().unsqueeze(1).clamp(min=lo))
            out.append((lo + frac * (hi - lo)).squeeze(1))
        result = torch.stack(out, 1).minimum(self.act_max.double().unsqueeze(1))
        return torch.where(total > 0, result, 0.0).float()

    def feature_stats(self, start: int, stop: int) -> list[FeatureStats]:
        """Records for features ``start..stop-1``; the histogram's last bin ends at the exact max."""
        qs = self.quantiles()[start:stop].tolist()
        tokens = int(self.tokens)
        records = []
        for j, f in enumerate(range(start, stop)):
            fired = int(self.fire_count[f])
            if fired == 0:
                records.append(FeatureStats(density=0.0, max_act=0.0, mean_act=0.0, tokens_scanned=tokens))
                continue
            hi, top = float(self.hist_hi[f]), float(self.act_max[f])
            edges = [_short(hi * b / self.bins) for b in range(self.bins + 1)]
            counts = self.hist[f].tolist()
            if counts[-1]:
                edges.append(max(_short(top), edges[-1]))
            else:
                counts.pop()
            while len(counts) > 1 and counts[-1] == 0:  # drop empty bins above the max
                counts.pop()
                edges.pop()
            records.append(
                FeatureStats(
                    density=fired / max(tokens, 1),
                    max_act=top,
                    mean_act=float(self.act_sum[f]) / fired,
                    quantiles={str(q): min(_short(v), top) for q, v in zip(QUANTILES, qs[j])},
                    histogram=Histogram(edges=edges, counts=counts),
                    tokens_scanned=tokens,
                )
            )
        return records


def _short(value: float) -> float:
    """Five significant digits: finer than a bin, and half the JSON of a full float."""
    return float(f"{value:.5g}")


@torch.no_grad()
def histogram_range(sae, first_batches, calibrate: bool) -> Tensor:
    """``[d_sae]`` upper edge of each feature's histogram: 2 x its 0.99 activation quantile.

    Uses ``sae.feature_scale`` unless it is uncalibrated (all ones) or ``calibrate`` is set, in
    which case the quantile is measured on ``first_batches`` (an iterable of [n, d_in] tensors);
    features that never fire there get the median of the others."""
    from steerlab.sae.quantiles import FeatureQuantiles

    scale = sae.feature_scale.detach().float().cpu()
    if not calibrate and not bool((scale == 1.0).all()):
        return 2.0 * scale
    stats = FeatureQuantiles(sae.cfg.d_sae)
    for acts in first_batches:
        codes = sae.sparse_encode(acts)
        stats.update(codes.values.float().cpu(), codes.cols.cpu())
    seen = stats.totals > 0
    q = stats.quantile(0.99, default=0.0)
    fallback = float(q[seen].median()) if bool(seen.any()) else 1.0
    return 2.0 * torch.where(seen, q, torch.full_like(q, fallback))
