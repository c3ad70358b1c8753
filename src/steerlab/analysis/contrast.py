"""Contrast: the features that most distinguish two datasets of conversations.

Only the messages' text is read (the chat template, special tokens and a default system prompt are
left out; ``include_template=True`` puts them back). Every conversation weighs the same, however long.

``rank_by="specificity"`` (the default with the feature database's statistics), robust on tiny datasets:

1. Each conversation is pooled to one number per feature: the mean, over its content tokens, of the
   feature's specificity (``features.specificity``: ``-log10`` of the corpus fraction of tokens on which
   the feature is at least this active; 0 where it does not fire). A feature that fires on one stray
   token of a 40-token reply gets 1/40 of that token's score; one that fires throughout gets it all.
2. The effect is the difference of the two sides' averages of those pooled values (in decades of
   specificity), with a 90% bootstrap interval (conversations resampled within each side, 1000 times,
   fixed seed).
3. Support: the share of the favoured side's conversations in which the feature fires notably at least
   once (specificity >= ``FIRES_AT``, one corpus token in ~300). Features with support >= ``SUPPORT``
   (with two conversations a side: both) rank first; among each group, by the interval's near end (the
   lower bound for dataset_1, the upper for dataset_2): a feature wins only if it is higher in (nearly)
   every resample, so with two conversations a side it must be higher in both. Ties: the effect itself.
   Support is what keeps a feature that is merely a bit more active throughout one side's replies (a
   "hope" or "the word 'of'" feature at its typical strength) below one that fires distinctly in every
   conversation of that side.
4. With fewer than ``MIN_CONVERSATIONS`` conversations on a side the result says so (``note``): the
   interval cannot be narrower than the spread of the few conversations there are.

``rank_by="relevance"`` (the default when the features' topic vectors are given too, ``features.topic``):
steps 1-4, but within each support group features are ranked by the interval's near end (floored at 0) times
the cube of the favoured side's topical relevance to the feature (floored at 0; ``RELEVANCE_POWER``): the
cosine of the side's text (the mean embedding of its conversations' content) to the feature's context vector
plus the cosine to its label. So among features that separate the sides, those about what the favoured side
talks about come first; the cube keeps a feature that separates strongly but is only loosely related (a token
feature shared by Spanish and Portuguese, relevance 0.5) from outranking one about the side (relevance 0.75)
that separates a third as well. Chosen on the development pairs (``benchmarks/inspect_relevance_dev_data.py``:
6/12 -> 8/12 with the concept in the top 3 for relevance to the first power, the passing feature's mean
reciprocal rank 0.528 -> 0.625 for the cube).

``rank_by="frequency"`` (the ranking before, and the default without a feature database):

1. Each conversation is reduced to its mean activation over its tokens, in per-feature units.
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
from steerlab.features.specificity import NOTABLE_AT, STATISTIC, CorpusStats, specificity
from steerlab.features.topic import TopicVectors, embed_texts
from steerlab.models.chunked import Hold
from steerlab.steering.errors import DatasetError

MIN_CONVERSATIONS = 5
"""Fewer conversations than this on a side and the result carries a note that the data is thin."""
RELEVANCE = "relevance"
RANKINGS = (RELEVANCE, STATISTIC, "frequency")
BOOTSTRAP = 1000
INTERVAL = 0.90
FIRES_AT = NOTABLE_AT
"""A conversation *has* a feature when its specificity reaches this on one of its scored tokens (support,
module doc). Chosen on the development set (benchmarks/inspect_relevance_dev_data.py), not the benchmark's."""
SUPPORT = 0.75
"""Features present in at least this share of the favoured side's conversations rank first."""
RELEVANCE_POWER = 3
"""The relevance ranking weighs the interval's near end by relevance to this power (module doc). The smallest
power reaching the development pairs' best mean reciprocal rank of the first feature about the concept
(powers 1, 2, 3, 4, 6, 8, 12: 0.528, 0.583, 0.625, then 0.625 throughout)."""


@dataclass
class ContrastFeature:
    index: int
    label: str
    effect: float
    """Positive favours dataset_1. Specific ranking: difference of the sides' mean pooled specificity
    (decades); frequency ranking: the rank-biserial correlation in [-1, 1]."""
    mean_units_1: float
    """Average over dataset_1's conversations of each conversation's mean activation (units)."""
    mean_units_2: float
    firing_rate_1: float
    """Average over dataset_1's conversations of the fraction of its tokens the feature fired on."""
    firing_rate_2: float
    effect_low: float | None = None
    """The effect's 90% bootstrap interval (specific ranking; None under the frequency ranking)."""
    effect_high: float | None = None
    rank_biserial: float = 0.0
    """Rank-biserial correlation of the per-conversation pooled values (whichever ranking)."""
    ranked_by: str = "frequency"
    """``relevance``, ``specificity`` or ``frequency`` (module doc)."""
    support: float | None = None
    """Specific ranking: the share of the favoured side's conversations in which the feature fires with
    specificity >= ``FIRES_AT`` (module doc); None under the frequency ranking."""
    relevance: float | None = None
    """Relevance ranking: the favoured side's topical relevance to the feature (``features.topic``)."""


@dataclass
class ContrastResult:
    dataset_1_features: list[ContrastFeature]
    """Features more active in dataset_1, most distinguishing first."""
    dataset_2_features: list[ContrastFeature]
    ranked_by: str = "frequency"
    note: str | None = None
    """Set when the data is too thin for the ranking to be trusted (too few conversations, no content)."""


@dataclass
class Profiles:
    """Per conversation ``[n, d_sae]``: mean activation (units), firing rate, pooled (mean) specificity and
    peak specificity (None without statistics), all over the conversation's scored tokens; ``tokens``:
    how many."""

    mean_units: torch.Tensor
    firing_rate: torch.Tensor
    specificity: torch.Tensor | None
    tokens: list[int]
    peak: torch.Tensor | None = None
    texts: list[str] | None = None
    """Each conversation's content text (what the relevance ranking embeds)."""


def conversation_profiles(
    lm,
    sae,
    dataset,
    field: str,
    variant=None,
    *,
    chunk_tokens: int | None = None,
    hold: Hold = nullcontext,
    corpus_stats: CorpusStats | None = None,
    include_template: bool = False,
) -> Profiles:
    """Each conversation pooled over its content tokens (every token with ``include_template``); each
    runs in pieces of ``chunk_tokens``, each inside ``hold()`` (``codes.conversation_codes``)."""
    if not isinstance(dataset, (list, tuple)) or not dataset:
        raise DatasetError("must be a non-empty list of conversations", field=field)
    scale = sae.feature_scale.float().clamp_min(1e-12)
    pooled, texts = [], []
    for i, messages in enumerate(dataset):
        got = conversation_codes(
            lm, sae, messages, variant, field=f"{field}[{i}]", chunk_tokens=chunk_tokens, hold=hold
        )
        codes = got.codes
        if not include_template and got.content is not None:
            codes = codes[torch.tensor(got.content, dtype=torch.bool, device=codes.device)]
        pooled.append(codes)
        texts.append(got.content_text)
    profiles = pool(pooled, scale, corpus_stats)
    profiles.texts = texts
    return profiles


def pool(conversations: list[torch.Tensor], scale: torch.Tensor, corpus_stats: CorpusStats | None) -> Profiles:
    """``Profiles`` of conversations given as their scored tokens' raw codes (``[tokens_i, d_sae]`` each)."""
    means, rates, specs, peaks, tokens = [], [], [], [], []
    for codes in conversations:
        tokens.append(codes.shape[0])
        n = max(codes.shape[0], 1)
        means.append((codes / scale.to(codes.device)).sum(0).cpu() / n)
        rates.append((codes > 0).float().sum(0).cpu() / n)
        if corpus_stats is not None:
            spec = specificity(codes, corpus_stats).cpu()
            specs.append(spec.sum(0) / n)
            peaks.append(spec.max(0).values if spec.shape[0] else torch.zeros(spec.shape[1]))
    return Profiles(
        torch.stack(means),
        torch.stack(rates),
        torch.stack(specs) if specs else None,
        tokens,
        torch.stack(peaks) if peaks else None,
    )


def bootstrap_interval(
    x: torch.Tensor, y: torch.Tensor, n_boot: int = BOOTSTRAP, level: float = INTERVAL, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``level`` percentile interval of ``mean(x) - mean(y)`` per column of ``x [n1, F]``, ``y [n2, F]``,
    resampling rows within each side ``n_boot`` times (seeded: the same data gives the same interval)."""
    gen = torch.Generator().manual_seed(seed)

    def resampled_means(v: torch.Tensor) -> torch.Tensor:
        n = v.shape[0]
        picks = torch.randint(0, n, (n_boot, n), generator=gen)
        weights = (
            torch.zeros(n_boot, n, dtype=torch.float64).scatter_add_(
                1, picks, torch.ones(n_boot, n, dtype=torch.float64)
            )
            / n
        )
        return weights @ v.double().cpu()  # [n_boot, F]

    diffs = resampled_means(x) - resampled_means(y)
    tail = (1.0 - level) / 2
    lo, hi = torch.quantile(diffs, torch.tensor([tail, 1.0 - tail], dtype=torch.float64), dim=0)
    return lo.float(), hi.float()


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
    corpus_stats: CorpusStats | None = None,
    rank_by: str | None = None,
    include_template: bool = False,
    topic: TopicVectors | None = None,
) -> ContrastResult:
    """Rank features by how well they separate ``dataset_1`` from ``dataset_2`` (see module doc).
    ``k_to_add`` / ``k_to_remove`` (Ember's names) override ``top_k`` for side 1 / side 2.
    ``chunk_tokens``/``hold``: the model is held one piece of a conversation at a time.
    ``corpus_stats``: the feature database's statistics (``Lab.corpus_stats``), needed by and making
    default the specific ranking; ``topic``: the features' topic vectors (``Lab.topic_vectors``), which with the
    statistics make ``relevance`` the default; ``rank_by``: ``relevance``, ``specificity`` or ``frequency``."""
    for name, k in (("top_k", top_k), ("k_to_add", k_to_add), ("k_to_remove", k_to_remove)):
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
            raise DatasetError(f"must be a non-negative integer, got {k!r}", field=name)
    if rank_by is None:
        rank_by = "frequency" if corpus_stats is None else RELEVANCE if topic is not None else STATISTIC
    if rank_by not in RANKINGS:
        raise DatasetError(f"must be one of {', '.join(RANKINGS)}, got {rank_by!r}", field="rank_by")
    if rank_by in (STATISTIC, RELEVANCE) and corpus_stats is None:
        raise DatasetError(
            "needs the feature database's statistics (density, quantiles); use rank_by='frequency'", field="rank_by"
        )
    if rank_by == RELEVANCE and topic is None:
        raise DatasetError(
            "needs topic vectors (the embedding model and the features' labels or context vectors); "
            "use rank_by='specificity'",
            field="rank_by",
        )
    if not isinstance(dataset_1, (list, tuple)) or not dataset_1:
        raise DatasetError("must be a non-empty list of conversations", field="dataset_1")
    if not isinstance(dataset_2, (list, tuple)) or not dataset_2:
        raise DatasetError("must be a non-empty list of conversations", field="dataset_2")
    stats = corpus_stats if rank_by in (STATISTIC, RELEVANCE) else None
    options = {"chunk_tokens": chunk_tokens, "hold": hold, "corpus_stats": stats, "include_template": include_template}
    p1 = conversation_profiles(lm, sae, dataset_1, "dataset_1", variant, **options)
    p2 = conversation_profiles(lm, sae, dataset_2, "dataset_2", variant, **options)
    k1, k2 = top_k if k_to_add is None else k_to_add, top_k if k_to_remove is None else k_to_remove
    return rank_profiles(p1, p2, rank_by, k1, k2, labels, topic)


def side_relevance(profiles: Profiles, topic: TopicVectors) -> torch.Tensor:
    """``[d_sae]`` topical relevance of a side's text (its conversations' mean embedding) to every feature."""
    vector = embed_texts(profiles.texts or [])
    if vector is None:
        return torch.zeros(profiles.mean_units.shape[1])
    return torch.from_numpy(topic.relevance(vector).copy())


def rank_profiles(
    p1: Profiles, p2: Profiles, rank_by: str, k1: int, k2: int, labels=None, topic: TopicVectors | None = None
) -> ContrastResult:
    """The ranking of the module doc over two datasets' ``Profiles`` (``rank_by``: specificity and relevance need
    ``specificity`` profiles, relevance ``topic`` and the profiles' texts); ``k1``/``k2`` features a side."""
    mean_1, rate_1, mean_2, rate_2 = p1.mean_units, p1.firing_rate, p2.mean_units, p2.firing_rate
    seen = ((rate_1 > 0).any(0) | (rate_2 > 0).any(0)).nonzero().flatten()
    label = labeler(labels)
    relevance_1 = relevance_2 = None
    if rank_by in (STATISTIC, RELEVANCE):
        assert p1.specificity is not None and p2.specificity is not None
        x, y = p1.specificity[:, seen], p2.specificity[:, seen]
        effect = x.mean(0) - y.mean(0)
        low, high = bootstrap_interval(x, y)
        r = rank_biserial(x, y)
        assert p1.peak is not None and p2.peak is not None
        support_1 = (p1.peak[:, seen] >= FIRES_AT).float().mean(0)
        support_2 = (p2.peak[:, seen] >= FIRES_AT).float().mean(0)
        # supported features first (pooled specificities are a few decades: 1000 outranks any interval end)
        key_1 = low + 1000.0 * (support_1 >= SUPPORT).float()
        key_2 = -high + 1000.0 * (support_2 >= SUPPORT).float()
        tie = effect
        if rank_by == RELEVANCE:
            assert topic is not None
            relevance_1, relevance_2 = side_relevance(p1, topic)[seen], side_relevance(p2, topic)[seen]
            weight_1, weight_2 = (r.clamp_min(0) ** RELEVANCE_POWER for r in (relevance_1, relevance_2))
            key_1 = low.clamp_min(0) * weight_1 + 1000.0 * (support_1 >= SUPPORT).float()
            key_2 = (-high).clamp_min(0) * weight_2 + 1000.0 * (support_2 >= SUPPORT).float()
    else:
        r = rank_biserial(mean_1[:, seen], mean_2[:, seen])
        effect, low, high, support_1, support_2 = r, None, None, None, None
        key_1, key_2, tie = r, -r, mean_1[:, seen].mean(0) - mean_2[:, seen].mean(0)

    def ranked(sign: float, key: torch.Tensor, k: int) -> list[ContrastFeature]:
        support = support_1 if sign > 0 else support_2
        relevance = relevance_1 if sign > 0 else relevance_2
        keep = ((sign * effect > 0) | ((effect == 0) & (sign * tie > 0))).nonzero().flatten()
        keep = keep[(sign * tie[keep]).argsort(descending=True, stable=True)]
        keep = keep[key[keep].argsort(descending=True, stable=True)][:k]
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
                    None if low is None else float(low[j]),
                    None if high is None else float(high[j]),
                    float(r[j]),
                    rank_by,
                    None if support is None else float(support[j]),
                    None if relevance is None else float(relevance[j]),
                )
            )
        return out

    return ContrastResult(
        ranked(1.0, key_1, k1),
        ranked(-1.0, key_2, k2),
        rank_by,
        _note(p1.tokens, p2.tokens),
    )


def _note(tokens_1: list[int], tokens_2: list[int]) -> str | None:
    """What makes this contrast thin, in words (None when nothing does)."""
    notes = []
    for name, tokens in (("dataset_1", tokens_1), ("dataset_2", tokens_2)):
        empty = sum(1 for n in tokens if n == 0)
        if empty:
            notes.append(f"{empty} conversation(s) of {name} have no content tokens to score")
        if len(tokens) < MIN_CONVERSATIONS:
            notes.append(
                f"{name} has {len(tokens)} conversation(s): too little data for a reliable ranking "
                f"(at least {MIN_CONVERSATIONS} a side); the intervals show how uncertain it is"
            )
    return "; ".join(notes) or None
