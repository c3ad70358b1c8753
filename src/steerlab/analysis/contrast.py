"""Contrast: the features that most distinguish two datasets of conversations.

The statistic, chosen so that one long conversation cannot dominate:

1. Each conversation is reduced to one number per feature: its mean activation over its tokens, in
   per-feature units. Every conversation then weighs the same, however long it is.
2. Features are ranked by the rank-biserial correlation between the two sides' per-conversation
   means, ``r = 2 * AUC - 1`` with ``AUC = P(x1 > x2) + P(x1 = x2) / 2`` over all cross pairs
   (the Mann-Whitney U effect size). ``r = 1``: every dataset_1 conversation activates the feature
   more than every dataset_2 one. Being rank-based, one extreme conversation moves it by at most
   ``1 / n``.
3. Ties in ``r`` (common with few conversations) are broken by the difference of the two sides'
   averages of per-conversation means.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from steerlab.analysis.codes import conversation_codes, labeler
from steerlab.models.chunked import Hold
from steerlab.steering.errors import DatasetError


@dataclass
class ContrastFeature:
    index: int
    label: str
    effect: float
    """Rank-biserial correlation in [-1, 1]; positive favours dataset_1."""
    mean_units_1: float
    """Average over dataset_1's conversations of each conversation's mean activation (units)."""
    mean_units_2: float
    firing_rate_1: float
    """Average over dataset_1's conversations of the fraction of its tokens the feature fired on."""
    firing_rate_2: float


@dataclass
class ContrastResult:
    dataset_1_features: list[ContrastFeature]
    """Features more active in dataset_1, most distinguishing first."""
    dataset_2_features: list[ContrastFeature]


def conversation_profiles(
    lm, sae, dataset, field: str, variant=None, *, chunk_tokens: int | None = None, hold: Hold = nullcontext
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per conversation: mean activation in units ``[n, d_sae]`` and firing rate ``[n, d_sae]``; each
    conversation runs in pieces of ``chunk_tokens``, each inside ``hold()`` (``codes.conversation_codes``)."""
    if not isinstance(dataset, (list, tuple)) or not dataset:
        raise DatasetError("must be a non-empty list of conversations", field=field)
    scale = sae.feature_scale.float().clamp_min(1e-12)
    means, rates = [], []
    for i, messages in enumerate(dataset):
        codes = conversation_codes(
            lm, sae, messages, variant, field=f"{field}[{i}]", chunk_tokens=chunk_tokens, hold=hold
        ).codes
        means.append((codes / scale.to(codes.device)).mean(0).cpu())
        rates.append((codes > 0).float().mean(0).cpu())
    return torch.stack(means), torch.stack(rates)


def rank_biserial(x: torch.Tensor, y: torch.Tensor, chunk_pairs: int = 20_000_000) -> torch.Tensor:
    """``2 * AUC - 1`` per column of ``x [n1, F]`` against ``y [n2, F]``."""
    n1, n2, n_features = x.shape[0], y.shape[0], x.shape[1]
    step = max(1, chunk_pairs // (n1 * n2))
    out = torch.empty(n_features)
    for start in range(0, n_features, step):
        a, b = x[:, None, start : start + step], y[None, :, start : start + step]
        auc = (a > b).float().mean((0, 1)) + 0.5 * (a == b).float().mean((0, 1))
        out[start : start + step] = 2 * auc - 1
    return out


def contrast(
    lm,
    sae,
    dataset_1,
    dataset_2,
    *,
    top_k: int = 5,
    k_to_add: int | None = None,
    k_to_remove: int | None = None,
    labels=None,
    variant=None,
    chunk_tokens: int | None = None,
    hold: Hold = nullcontext,
) -> ContrastResult:
    """Rank features by how well they separate ``dataset_1`` from ``dataset_2`` (see module doc).
    ``k_to_add`` / ``k_to_remove`` (Ember's names) override ``top_k`` for side 1 / side 2.
    ``chunk_tokens``/``hold``: the model is held one piece of a conversation at a time."""
    for name, k in (("top_k", top_k), ("k_to_add", k_to_add), ("k_to_remove", k_to_remove)):
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
            raise DatasetError(f"must be a non-negative integer, got {k!r}", field=name)
    if not isinstance(dataset_1, (list, tuple)) or not dataset_1:
        raise DatasetError("must be a non-empty list of conversations", field="dataset_1")
    if not isinstance(dataset_2, (list, tuple)) or not dataset_2:
        raise DatasetError("must be a non-empty list of conversations", field="dataset_2")
    mean_1, rate_1 = conversation_profiles(
        lm, sae, dataset_1, "dataset_1", variant, chunk_tokens=chunk_tokens, hold=hold
    )
    mean_2, rate_2 = conversation_profiles(
        lm, sae, dataset_2, "dataset_2", variant, chunk_tokens=chunk_tokens, hold=hold
    )
    seen = ((rate_1 > 0).any(0) | (rate_2 > 0).any(0)).nonzero().flatten()
    effect = rank_biserial(mean_1[:, seen], mean_2[:, seen])
    diff = mean_1[:, seen].mean(0) - mean_2[:, seen].mean(0)
    label = labeler(labels)

    def ranked(sign: float, k: int) -> list[ContrastFeature]:
        keep = ((sign * effect > 0) | ((effect == 0) & (sign * diff > 0))).nonzero().flatten()
        keep = keep[(sign * diff[keep]).argsort(descending=True, stable=True)]
        keep = keep[(sign * effect[keep]).argsort(descending=True, stable=True)][:k]
        out = []
        for j in keep.tolist():
            i = int(seen[j])
            out.append(
                ContrastFeature(
                    i,
                    label(i),
                    float(effect[j]),
                    float(mean_1[:, i].mean()),
                    float(mean_2[:, i].mean()),
                    float(rate_1[:, i].mean()),
                    float(rate_2[:, i].mean()),
                )
            )
        return out

    return ContrastResult(
        ranked(1.0, top_k if k_to_add is None else k_to_add),
        ranked(-1.0, top_k if k_to_remove is None else k_to_remove),
    )
