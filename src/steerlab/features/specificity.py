"""How unusual an activation is *for that feature*: the statistic behind inspect, contrast and search by example.

A feature that fires on nearly every token (a "Python None/True/False" latent with density 0.37, a "the"
latent) says nothing about a particular text, however strongly it fires there; a rare feature reaching
its own top quantile does. So each activation ``a`` of feature ``f`` is judged against ``f``'s own
distribution over the corpus the feature database was built from (its density and activation
quantiles, ``features.schema.FeatureStats``):

    specificity(a) = -log10( P_corpus[ act_f >= a ] ) = -log10( density_f * S_f(a) )       (a > 0)

``S_f(a)`` is the fraction of ``f``'s *firing* tokens at least as strong as ``a``: 0.9 at its 0.1
quantile, 0.5 at its median, 0.01 at its 0.99 quantile, ``1 / fired_f`` at its corpus maximum
(log-linear between those knots, flat beyond the maximum). The score is in decades: 2.0 means "one
corpus token in a hundred has this feature at least this active", 4.0 one in ten thousand. It is 0
where the feature does not fire. Dense features score low even at their typical strength (density
0.37 at its median: 0.73); a rare feature at its typical strength scores high (density 7e-4: 3.4).
A feature that never fired in the corpus scores as if it had fired once (``log10(2 * tokens)``).

Pure functions: ``CorpusStats`` (tensors) from the database's records, then ``specificity``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from steerlab.features.schema import FeatureStats

STATISTIC = "specificity"
"""The statistic's name, carried by every result ranked with it."""
DEFINITION = "-log10 of the corpus fraction of tokens on which the feature is at least this active"
LEVELS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
"""The quantiles the feature database stores (``features.stats.QUANTILES``)."""
SPECIFIC_AT = 3.0
"""A token counts as a *specific* firing of a feature when its specificity reaches this (one corpus
token in a thousand or rarer): what ``aggregate_by="count"`` counts under the specific ranking."""
NOTABLE_AT = 2.5
"""A feature fires *notably* on a token at this specificity (one corpus token in ~300): what contrast's support
counts and what makes a feature a candidate of inspect's relevance ranking. Chosen on the development set
(benchmarks/inspect_relevance_dev_data.py)."""


@dataclass(frozen=True)
class CorpusStats:
    """Each feature's activation distribution over the database's corpus, as ``[d_sae, K]`` knots:
    ``knots[f]`` increasing activations (raw SAE units), ``log_tail[f]`` ``log10 P_corpus[act >= knot]``."""

    knots: Tensor
    log_tail: Tensor

    @classmethod
    def from_records(cls, records: Sequence[FeatureStats | None], tokens_scanned: int | None = None) -> CorpusStats:
        """From the feature database's ``stats`` (one per feature index; None = no statistics)."""
        scanned = tokens_scanned or max((r.tokens_scanned for r in records if r is not None), default=0) or 1
        d, n_q = len(records), len(LEVELS)
        density = np.zeros(d)
        max_act = np.zeros(d)
        quantiles = np.zeros((d, n_q))
        for f, r in enumerate(records):
            if r is not None:
                density[f], max_act[f] = r.density, r.max_act
                quantiles[f] = [r.quantiles.get(str(q), 0.0) for q in LEVELS]
        fired = density * scanned
        # knots: activation 0 (every firing token), the quantiles, the corpus maximum; made increasing
        xs = np.concatenate([np.zeros((d, 1)), np.minimum(quantiles, max_act[:, None]), max_act[:, None]], axis=1)
        xs = np.maximum.accumulate(xs, axis=1) + np.arange(n_q + 2) * 1e-6
        tails = np.concatenate(
            [
                np.ones((d, 1)),
                np.broadcast_to(1.0 - np.array(LEVELS), (d, n_q)),
                np.minimum(0.01, 1.0 / np.maximum(fired, 1.0))[:, None],
            ],
            axis=1,
        )
        log_tail = np.log10(tails * np.maximum(density, 1e-300)[:, None])
        never = (fired < 1.0) | (max_act <= 0)  # never seen firing: as if it had, once
        log_tail[never] = math.log10(0.5 / scanned)
        xs[never] = np.arange(n_q + 2) * 1e-6
        return cls(torch.from_numpy(xs).float(), torch.from_numpy(log_tail).float())

    @property
    def d_sae(self) -> int:
        return self.knots.shape[0]


def specificity(acts: Tensor, stats: CorpusStats) -> Tensor:
    """``acts [..., d_sae]`` raw SAE activations -> ``[..., d_sae]`` specificity (module doc): 0 where
    an activation is 0, else ``-log10 P_corpus[feature >= act]``."""
    if acts.shape[-1] != stats.d_sae:
        raise ValueError(f"activations have {acts.shape[-1]} features, the statistics {stats.d_sae}")
    shape = acts.shape
    flat = acts.reshape(-1, shape[-1]).float().cpu()
    knots, log_tail = stats.knots, stats.log_tail  # [d, K]
    out = torch.zeros_like(flat)
    rows, cols = (flat > 0).nonzero(as_tuple=True)
    if rows.numel():
        a = flat[rows, cols]
        k = knots[cols]  # [n, K]
        t = log_tail[cols]
        hi = torch.searchsorted(k, a.unsqueeze(1)).squeeze(1).clamp(1, k.shape[1] - 1)
        x0, x1 = k.gather(1, (hi - 1).unsqueeze(1)).squeeze(1), k.gather(1, hi.unsqueeze(1)).squeeze(1)
        y0, y1 = t.gather(1, (hi - 1).unsqueeze(1)).squeeze(1), t.gather(1, hi.unsqueeze(1)).squeeze(1)
        frac = ((a - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
        out[rows, cols] = -(y0 + frac * (y1 - y0))
    return out.reshape(shape).to(acts.device)


def reason(score: float) -> str:
    """One line saying how unusual a specificity ``score`` is, e.g. ``"this active on 1 in 12,000 corpus
    tokens"`` (what a search-by-example hit shows as its reason)."""
    return f"this active on 1 in {10**score:,.0f} corpus tokens ({STATISTIC} {score:.2f})"
