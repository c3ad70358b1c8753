"""How unusual a feature's activation on one text is, judged by the feature's own statistics in the database.

Raw activations do not compare across features: some fire at 40 on a third of all tokens, others at 3 on one
token in ten thousand. Search by example and inspect want the features a text wakes *more than they usually
are*, so a feature's max activation on the text is scored against what the database measured for it:

- ``level = act / q99``: the activation in units of the feature's own strong activation (its 0.99 quantile of
  nonzero activations; 1.0 = as strong as it gets on 1% of its firings);
- ``rarity = -log10(density)``: how seldom the feature fires at all (density = firing tokens / tokens scanned;
  1 for a feature on 10% of tokens, 4 for one on 0.01%), floored at ``MIN_RARITY`` so a feature that fires
  everywhere still ranks by level;
- ``score = level * rarity``.

``percentile`` says where the activation sits among the feature's own nonzero activations (its histogram),
which is what a hit shows as its reason ("above 97% of its firings"). Inputs are plain numbers and the
``FeatureStats`` records the database stores, so any caller (search by example, inspect, contrast) reuses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from steerlab.features.schema import FeatureStats

MIN_RARITY = 0.25
"""Floor of ``rarity``: a feature firing on more than half the tokens still counts a little."""


@dataclass(frozen=True)
class StatsTable:
    """Per-feature numbers ``score`` needs, as arrays ``[d_sae]`` (built once from the database)."""

    q99: np.ndarray
    density: np.ndarray
    tokens_scanned: np.ndarray
    edges: list[list[float]]
    cumulative: list[list[float]]
    """Histogram bin edges and the cumulative fraction of firings at each upper edge (empty: no statistics)."""

    @classmethod
    def of(cls, stats: Sequence[FeatureStats | None]) -> StatsTable:
        n = len(stats)
        q99, density, scanned = np.zeros(n), np.zeros(n), np.zeros(n)
        edges: list[list[float]] = [[] for _ in range(n)]
        cumulative: list[list[float]] = [[] for _ in range(n)]
        for i, s in enumerate(stats):
            if s is None or s.max_act <= 0:
                continue
            q99[i] = float(s.quantiles.get("0.99") or s.max_act)
            density[i], scanned[i] = s.density, s.tokens_scanned
            if s.histogram is not None and s.histogram.counts:
                total = float(sum(s.histogram.counts)) or 1.0
                edges[i] = list(s.histogram.edges)
                cumulative[i] = list(np.cumsum(s.histogram.counts) / total)
        return cls(q99, density, scanned, edges, cumulative)

    def __len__(self) -> int:
        return len(self.q99)


def rarity(density: np.ndarray | float, tokens_scanned: np.ndarray | float) -> np.ndarray:
    """``-log10(density)``, density floored at one token of those scanned, the result at ``MIN_RARITY``."""
    floor = 1.0 / np.maximum(np.asarray(tokens_scanned, dtype=np.float64), 1.0)
    return np.maximum(-np.log10(np.maximum(np.asarray(density, dtype=np.float64), floor)), MIN_RARITY)


def scores(acts: np.ndarray, table: StatsTable) -> np.ndarray:
    """``[d_sae]`` specificity of per-feature activations (e.g. the max over a text's tokens); 0 where the
    feature did not fire or the database holds no statistics for it."""
    acts = np.asarray(acts, dtype=np.float64)
    known = table.q99 > 0
    level = np.where(known & (acts > 0), acts / np.where(known, table.q99, 1.0), 0.0)
    return level * rarity(table.density, table.tokens_scanned) * known


def percentile(act: float, table: StatsTable, index: int) -> float | None:
    """Fraction of the feature's own nonzero activations below ``act`` (linear inside a histogram bin);
    None without a histogram."""
    edges, cumulative = table.edges[index], table.cumulative[index]
    if not cumulative:
        return None
    below = 0.0
    for b, top in enumerate(cumulative):
        lo, hi = edges[b], edges[b + 1]
        if act < hi:
            share = top - below
            return float(below + share * max(0.0, (act - lo) / max(hi - lo, 1e-12)))
        below = top
    return 1.0


def reason(act: float, table: StatsTable, index: int) -> str:
    """One line saying why the activation is unusual, e.g. ``"2.1x its strong level; above 99% of its
    firings; fires on 0.01% of tokens"``."""
    parts = [f"{act / table.q99[index]:.2g}x its strong level" if table.q99[index] > 0 else f"activation {act:.3g}"]
    p = percentile(act, table, index)
    if p is not None:
        parts.append(f"above {math.floor(100 * p)}% of its firings")
    if table.density[index] > 0:
        parts.append(f"fires on {100 * table.density[index]:.2g}% of tokens")
    return "; ".join(parts)
