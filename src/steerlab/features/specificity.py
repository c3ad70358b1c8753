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

import torch
from torch import Tensor

from steerlab.features.schema import FeatureStats

STATISTIC = "specificity"
"""The statistic's name, carried by every result ranked with it."""
DEFINITION = "-log10 of the corpus fraction of tokens on which the feature is at least this active"
SPECIFIC_AT = 3.0
"""A token counts as a *specific* firing of a feature when its specificity reaches this (one corpus
token in a thousand or rarer): what ``aggregate_by="count"`` counts under the specific ranking."""


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
        levels = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
        n_knots = len(levels) + 2  # activation 0 (every firing token) ... the corpus maximum
        knots = torch.zeros(len(records), n_knots, dtype=torch.float64)
        log_tail = torch.zeros(len(records), n_knots, dtype=torch.float64)
        never = math.log10(0.5 / scanned)
        for f, r in enumerate(records):
            fired = 0.0 if r is None else r.density * scanned
            if r is None or fired < 1.0 or r.max_act <= 0:
                log_tail[f] = never  # never seen firing: as if it had, once
                knots[f] = torch.arange(n_knots, dtype=torch.float64) * 1e-6
                continue
            qs = [r.quantiles.get(str(q)) for q in levels]
            xs = [0.0] + [min(float(v), r.max_act) if v is not None else math.nan for v in qs] + [r.max_act]
            tails = [1.0] + [1.0 - q for q in levels] + [min(1.0 / fired, 0.01)]
            row_x, row_t = [], []
            for x, t in zip(xs, tails):
                if math.isnan(x):
                    continue
                if row_x and x <= row_x[-1]:  # equal knots (binned quantiles): keep the rarer tail
                    row_t[-1] = min(row_t[-1], t)
                    continue
                row_x.append(x)
                row_t.append(t)
            while len(row_x) < n_knots:  # pad with flat knots past the maximum
                row_x.append(row_x[-1] + 1e-6 * (len(row_x) + 1))
                row_t.append(row_t[-1])
            knots[f] = torch.tensor(row_x, dtype=torch.float64)
            log_tail[f] = torch.log10(torch.tensor(row_t, dtype=torch.float64) * r.density)
        return cls(knots.float(), log_tail.float())

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
