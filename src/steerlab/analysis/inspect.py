"""Inspect: which features a conversation activates, token by token and in aggregate.

Every activation is reported twice and the field names say which: ``*_units`` is per-feature units
(raw / feature_scale: 1.0 = a strong, typical activation of that feature, the units steering uses)
and ``*_raw`` is the SAE's own output. Through a variant, edited features show their edited values
(a pin shows the pinned value) and scopes turn on token by token as they would in generation.

What is scored. By default only the text of the messages (``content``): the chat template, special
tokens and the default system prompt a template adds are left out of every aggregate and ranking
(``include_template=True`` puts them back). Per-token views still list them, marked ``template``.

How features are ranked (``rank_by``, named on every result as ``ranked_by``):

- ``"relevance"`` (the default when the feature database's statistics and topic vectors are given): what the
  text is about. A feature is a candidate when it fires notably on the scored tokens (peak specificity >=
  ``NOTABLE_AT``, one corpus token in ~300); candidates are ranked by ``peak specificity x max(relevance, 0)``,
  where relevance is the cosine of the text's embedding to the feature's context vector plus the cosine to
  its label vector (``features.topic``). Every ``aggregate_by`` ranks by that key; it chooses the activation
  reported (over the notable firings). Results carry ``specificity`` (the peak) and ``relevance``.
- ``"specificity"`` (the default with statistics but no topic vectors): each activation is
  judged against the feature's own corpus distribution, ``features.specificity`` (``-log10`` of the
  corpus fraction of tokens on which the feature is at least this active). Only *specific firings*
  (specificity >= ``SPECIFIC_AT``, one corpus token in a thousand or rarer) count, so features that fire
  on nearly every token drop out unless they are unusual here. ``aggregate_by`` then reads: count = the
  number of specific firings (ties: summed specificity), max = the highest specificity, mean = the
  average specificity of the specific firings, sum = their summed specificity. Reported activations
  (``act_units``/``act_raw``, ``count``) are the ``aggregate_by`` aggregate over those firings, and
  ``specificity`` the ranking key.
- ``"frequency"``: the ranking before (and without a feature database): the ``aggregate_by`` aggregate
  of every firing (count: tokens fired on).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from steerlab.analysis.codes import content_text, conversation_codes, labeler
from steerlab.features.specificity import NOTABLE_AT, SPECIFIC_AT, STATISTIC, CorpusStats, specificity
from steerlab.features.topic import TopicVectors, embed_text
from steerlab.models.chunked import Hold
from steerlab.steering.errors import SteeringError, UnknownFeatureError

AGGREGATIONS = ("count", "mean", "max", "sum")
"""count: tokens on which the feature fired; mean: average over those tokens; max; sum."""
RELEVANCE = "relevance"
RANKINGS = (RELEVANCE, STATISTIC, "frequency")
"""``rank_by`` values: ``relevance`` (the default with a feature database and topic vectors), ``specificity``
(the default with a feature database alone), ``frequency`` (the old one)."""
RELEVANCE_DEFINITION = (
    "peak specificity x max(0, cos(text, feature's context vector) + cos(text, feature's label)), over features "
    f"whose specificity reaches {NOTABLE_AT}"
)


@dataclass
class FeatureActivation:
    index: int
    label: str
    act_units: float
    act_raw: float
    count: int = 1
    """Tokens this value covers: 1 for a single token; for an aggregate, the tokens it fired on."""
    specificity: float | None = None
    """The ranking key under ``ranked_by="specificity"`` (module doc); the peak specificity under
    ``relevance``; None otherwise."""
    ranked_by: str = "frequency"
    """The statistic this feature was ranked by: ``relevance``, ``specificity`` or ``frequency`` for an
    aggregate; ``activation`` (strongest first) or ``specificity`` in a per-token list."""
    relevance: float | None = None
    """Under ``ranked_by="relevance"``: the text's topical relevance to the feature (``features.topic``)."""


@dataclass
class TokenFeatures:
    position: int
    token: str
    token_id: int
    features: list[FeatureActivation]
    template: bool = False
    """True for chat-template tokens (role headers, special tokens, a default system prompt): shown,
    not scored unless ``include_template``."""


class Inspection:
    """The result of ``inspect``: per-token codes plus ways to read them (module doc: what is scored,
    how features are ranked)."""

    def __init__(
        self,
        tokens: list[str],
        token_ids: list[int],
        codes: torch.Tensor,
        feature_scale: torch.Tensor,
        labels=None,
        event_names: list[str] | None = None,
        *,
        content: list[bool] | None = None,
        corpus_stats: CorpusStats | None = None,
        include_template: bool = False,
        topic: TopicVectors | None = None,
    ):
        self.tokens, self.token_ids = tokens, token_ids
        self.codes_raw = codes  # [T, d_sae]
        self.scale = feature_scale.float().clamp_min(1e-12).to(codes.device)
        self.codes_units = codes / self.scale
        self.label = labeler(labels)
        self.event_names = event_names or []
        self.content = [True] * len(tokens) if content is None else list(content)
        """Per token: True for the messages' text, False for the chat template (``codes.ConversationCodes``)."""
        self.include_template = include_template
        self.corpus_stats = corpus_stats
        self.topic = topic
        """Per-feature topic vectors (``features.topic``), which make ``relevance`` the default ranking."""
        self._specificity: torch.Tensor | None = None
        self._relevance: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def scored(self) -> torch.Tensor:
        """``[T]`` bool: the tokens aggregates and rankings read (the content, or every token with
        ``include_template``)."""
        if self.include_template:
            return torch.ones(len(self.tokens), dtype=torch.bool, device=self.codes_raw.device)
        return torch.tensor(self.content, dtype=torch.bool, device=self.codes_raw.device).reshape(len(self.tokens))

    @property
    def specificity(self) -> torch.Tensor | None:
        """``[T, d_sae]`` specificity of every activation (``features.specificity``); None without the
        feature database's statistics."""
        if self._specificity is None and self.corpus_stats is not None:
            self._specificity = specificity(self.codes_raw, self.corpus_stats)
        return self._specificity

    @property
    def default_ranking(self) -> str:
        if self.corpus_stats is None:
            return "frequency"
        return RELEVANCE if self.topic is not None else STATISTIC

    @property
    def note(self) -> str | None:
        """What the default ranking lacks, in a line (None when nothing is missing)."""
        if self.corpus_stats is None:
            return "no feature database statistics: ranked by frequency"
        if self.topic is None:
            return "no topic vectors (embedding model or feature database): ranked by specificity alone"
        return self.topic.note

    @property
    def content_text(self) -> str:
        """The text of the messages (the content tokens; separate runs on separate lines): what relevance
        embeds, whether or not the template is scored."""
        return content_text(self.tokens, self.content)

    @property
    def relevance(self) -> torch.Tensor:
        """``[d_sae]`` topical relevance of every feature to the text (``features.topic``)."""
        if self._relevance is None:
            self.ranking(RELEVANCE)
            assert self.topic is not None
            text = self.content_text
            if text:
                scores = torch.from_numpy(self.topic.relevance(embed_text(text)).copy())
            else:
                scores = torch.zeros(self.codes_raw.shape[1])
            self._relevance = scores.to(self.codes_raw.device)
        return self._relevance

    def ranking(self, rank_by: str | None = None) -> str:
        """``rank_by`` checked (None: the default ranking): the statistic rankings will use."""
        rank_by = self.default_ranking if rank_by is None else rank_by
        if rank_by not in RANKINGS:
            raise SteeringError(f"must be one of {', '.join(RANKINGS)}, got {rank_by!r}", field="rank_by")
        if rank_by in (STATISTIC, RELEVANCE) and self.corpus_stats is None:
            raise SteeringError(
                "needs the feature database's statistics (density, quantiles), which this lab has not got; "
                "use rank_by='frequency'",
                field="rank_by",
            )
        if rank_by == RELEVANCE and self.topic is None:
            raise SteeringError(
                "needs topic vectors (the embedding model and the features' labels or context vectors), which "
                "this lab has not got; use rank_by='specificity'",
                field="rank_by",
            )
        return rank_by

    def _activation(
        self,
        index: int,
        units: float,
        raw: float,
        count: int = 1,
        spec: float | None = None,
        by: str = "activation",
        relevance: float | None = None,
    ) -> FeatureActivation:
        return FeatureActivation(index, self.label(index), units, raw, count, spec, by, relevance)

    def _spec_at(self, position: int, index: int) -> float | None:
        spec = self.specificity
        return None if spec is None else float(spec[position, index])

    def token(self, position: int, k: int | None = 5, specific_only: bool = False) -> list[FeatureActivation]:
        """The features active at one token, strongest (in units) first; with ``specific_only``, only
        its specific firings (specificity >= ``SPECIFIC_AT``), most specific first."""
        units = self.codes_units[position]
        nonzero = units.nonzero().flatten()
        if specific_only:
            self.ranking(STATISTIC)
            spec = self.specificity[position]  # type: ignore[index]
            nonzero = nonzero[spec[nonzero] >= SPECIFIC_AT]
            order = nonzero[spec[nonzero].argsort(descending=True)][:k]
        else:
            order = nonzero[units[nonzero].argsort(descending=True)][:k]
        by = STATISTIC if specific_only else "activation"
        return [
            self._activation(i, float(units[i]), float(self.codes_raw[position, i]), 1, self._spec_at(position, i), by)
            for i in order.tolist()
        ]

    def per_token(
        self,
        k: int | None = None,
        features: list[int] | None = None,
        specific_only: bool = False,
        scored_only: bool = False,
    ) -> list[TokenFeatures]:
        """Every token with its active features (all, the top ``k``, or only ``features``), template
        tokens marked. ``specific_only``: each token's specific firings only, most specific first (what
        the specific ranking counts); ``scored_only``: none on tokens that are not scored (template
        tokens unless ``include_template``)."""
        keep = None if features is None else set(self._check(features))
        scored = self.scored.tolist()
        out = []
        for t, (tok, tid) in enumerate(zip(self.tokens, self.token_ids)):
            acts = [] if scored_only and not scored[t] else self.token(t, None, specific_only)
            acts = [a for a in acts if keep is None or a.index in keep][:k]
            out.append(TokenFeatures(t, tok, tid, acts, not self.content[t]))
        return out

    def per_token_ranked(self, ranked: list[FeatureActivation]) -> list[TokenFeatures]:
        """Every token with the firings that ``ranked`` (a ``top`` list) counted there, in ``ranked``'s order:
        under ``relevance`` its notable firings (specificity >= ``NOTABLE_AT``) of those features, under
        ``specificity`` its specific ones, under ``frequency`` every activation; none on tokens that are not
        scored. Each carries the token's activation and specificity, and the feature's relevance. So counting
        the tokens each feature is listed on (the goodfire SDK's ``top(k)``) picks among ``ranked`` alone."""
        rank_by = ranked[0].ranked_by if ranked else self.ranking(None)
        fired = self._fired(self.ranking(rank_by))
        order = [a.index for a in ranked]
        relevance = {a.index: a.relevance for a in ranked}
        out = []
        for t, (tok, tid) in enumerate(zip(self.tokens, self.token_ids)):
            acts = [
                self._activation(
                    i,
                    float(self.codes_units[t, i]),
                    float(self.codes_raw[t, i]),
                    1,
                    self._spec_at(t, i),
                    rank_by,
                    relevance[i],
                )
                for i in order
                if fired[t, i]
            ]
            out.append(TokenFeatures(t, tok, tid, acts, not self.content[t]))
        return out

    def aggregate(
        self, by: str = "count", min_units: float = 0.0, rank_by: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per feature ``(value_units [d_sae], value_raw [d_sae], count [d_sae])`` over the scored tokens.
        A feature "fires" on a token when its activation exceeds ``min_units`` and, under
        ``rank_by="specificity"``, its specificity reaches ``SPECIFIC_AT`` (``NOTABLE_AT`` under
        ``relevance``)."""
        by = "count" if by == "frequency" else by  # the SDK's name for count
        if by not in AGGREGATIONS:
            raise SteeringError(f"must be one of {', '.join(AGGREGATIONS)}, got {by!r}", field="aggregate_by")
        fired = self._fired(self.ranking(rank_by), min_units)
        count = fired.sum(0)
        units, raw = self.codes_units * fired, self.codes_raw * fired
        if by == "count":
            return count.float(), count.float(), count
        if by == "max":
            return units.max(0).values, raw.max(0).values, count
        total_u, total_r = units.sum(0), raw.sum(0)
        if by == "sum":
            return total_u, total_r, count
        denom = count.clamp_min(1).float()
        return total_u / denom, total_r / denom, count

    def _fired(self, rank_by: str, min_units: float = 0.0) -> torch.Tensor:
        fired = (self.codes_units > min_units) & self.scored[:, None]
        if rank_by == STATISTIC:
            fired &= self.specificity >= SPECIFIC_AT  # type: ignore[operator]
        elif rank_by == RELEVANCE:
            fired &= self.specificity >= NOTABLE_AT  # type: ignore[operator]
        return fired

    def top(
        self, k: int = 5, by: str = "count", features: list[int] | None = None, rank_by: str | None = None
    ) -> list[FeatureActivation]:
        """The ``k`` features ranked by ``rank_by`` (module doc) with ``aggregate_by`` ``by``, each with
        its aggregate activation, the statistic it was ranked by and (specific ranking) its key.
        Frequency ranking: the largest aggregate; count ties broken by summed activation.
        ``features`` restricts the candidates."""
        rank_by = self.ranking(rank_by)
        units, raw, count = self.aggregate(by, rank_by=rank_by)
        candidates = (
            torch.arange(len(units)) if features is None else torch.tensor(self._check(features), dtype=torch.long)
        )
        candidates = candidates[count[candidates] > 0] if features is None else candidates
        relevance = None
        if rank_by == RELEVANCE:
            key_spec = (self.specificity * self._fired(rank_by)).max(0).values  # type: ignore[operator]
            relevance = self.relevance
            primary, tie_break = key_spec * relevance.clamp_min(0.0), key_spec
        elif rank_by == STATISTIC:
            spec = self.specificity * self._fired(rank_by)  # type: ignore[operator]
            total = spec.sum(0)
            agg = "count" if by == "frequency" else by
            key_spec = {"max": spec.max(0).values, "mean": total / count.clamp_min(1).float()}.get(agg, total)
            primary, tie_break = (count.float(), total) if agg == "count" else (key_spec, count.float())
        else:
            key_spec, primary, tie_break = None, units, self.aggregate("sum", rank_by=rank_by)[0]
        candidates = candidates[tie_break[candidates].argsort(descending=True, stable=True)]
        order = candidates[primary[candidates].argsort(descending=True, stable=True)][:k]
        return [
            self._activation(
                i,
                float(units[i]),
                float(raw[i]),
                int(count[i]),
                None if key_spec is None else float(key_spec[i]),
                rank_by,
                None if relevance is None else float(relevance[i]),
            )
            for i in order.tolist()
        ]

    def matrix(self, features: list[int] | None = None, units: bool = True) -> np.ndarray:
        """Dense ``[tokens, len(features)]`` activations (all features when None), per-feature units
        unless ``units=False``."""
        codes = self.codes_units if units else self.codes_raw
        if features is not None:
            codes = codes[:, self._check(features)]
        return codes.cpu().numpy()

    def _check(self, features: list[int]) -> list[int]:
        d_sae = self.codes_raw.shape[1]
        for i, f in enumerate(features):
            if isinstance(f, bool) or not isinstance(f, int) or not 0 <= f < d_sae:
                raise UnknownFeatureError(
                    f"must be a feature index in 0..{d_sae - 1}, got {f!r}", field=f"features[{i}]"
                )
        return list(features)


def inspect(
    lm,
    sae,
    messages,
    variant=None,
    *,
    labels=None,
    sae_id: str | None = None,
    chunk_tokens: int | None = None,
    hold: Hold = nullcontext,
    corpus_stats: CorpusStats | None = None,
    include_template: bool = False,
    topic: TopicVectors | None = None,
) -> Inspection:
    """Run ``messages`` (the whole conversation, every message closed) to the SAE's hookpoint, through
    ``variant`` if given, and return the per-token codes. ``labels``: dict or callable index -> label;
    ``sae_id``: the SAE's identity (a variant naming another SAE's features is refused);
    ``chunk_tokens``/``hold``: run it in pieces, each inside ``hold()`` (``codes.conversation_codes``);
    ``corpus_stats``: the feature database's statistics (``Lab.corpus_stats``), which make the specific
    ranking the default; ``topic``: the features' topic vectors (``Lab.topic_vectors``), which make the
    relevance ranking the default; ``include_template``: score the chat template's tokens too (module doc)."""
    got = conversation_codes(lm, sae, messages, variant, sae_id=sae_id, chunk_tokens=chunk_tokens, hold=hold)
    return Inspection(
        got.tokens,
        got.token_ids,
        got.codes,
        sae.feature_scale,
        labels,
        got.event_names,
        content=got.content,
        corpus_stats=corpus_stats,
        include_template=include_template,
        topic=topic,
    )
