"""AutoSteer: a plain-language goal ("talk like a pirate", "be more formal") -> feature edits with strengths.

1. **Stimulus**: the model's own replies to templated prompts with and without an instruction to
   follow the goal (``stimulus.py``).
2. **Candidates**: label search on the goal (when a feature database is given), features that read
   the goal's words, contrast of the two stimulus datasets, and the gradient of the goal-following
   text's likelihood with respect to each feature's nudge, per steering unit (``sae.units``: the
   value a user sets; ``autosteer_candidates.py``); merged round-robin into a pool.
3. **Strengths, by generating**: the whole pool at the middle strength of a grid (``strengths_for``),
   then the best ``n_candidates`` at the other strengths, on a few held-out prompts; every row of a
   stage in one batched steered pass (one controller per batch row). Replies are scored against the
   unsteered replies by ``scoring.ReplyScorer``: goal relevance (sentence-embedding similarity to the
   goal, relative to the unsteered replies), instruction relevance and coherence (perplexity under
   the unsteered model), combined by harmonic mean. Then combinations of the best few candidates,
   each at its own best strength and at half of it (nudges add up, so a combination usually wants
   less of each).
4. **Confirmation** (``confirm``): the best few edit sets are generated again on scoring prompts not
   used so far, and each is judged by its score pooled over both prompt sets (as is doing nothing):
   the maximum of ~30 noisy trials on 3 prompts is inflated by luck. The best wins if it beats the
   unsteered replies; ties go to the larger concept x fluency.

Cost: ``(pool + n_candidates * (len(push) - 1) + combinations) * n_prompts`` short greedy replies
(84 with the defaults) plus ``(confirm + 1) * n_confirm_prompts`` (15), ``2 * stimulus_size`` stimulus
replies, a few dozen short forward passes and one backward pass: 1-3 minutes on two busy CPU cores
for the 135M default model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from steerlab.analysis.autosteer_candidates import (
    Candidate,
    contrast_candidates,
    gradient_candidates,
    mention_candidates,
    merge_candidates,
    search_candidates,
)
from steerlab.analysis.autosteer_generate import Row, generate_rows
from steerlab.analysis.scoring import PARTS, ReplyScorer
from steerlab.analysis.stimulus import (
    PROMPT_TOKENS,
    ContrastiveStimulus,
    generate_contrastive_stimulus,
    stimulus_token_estimate,
)
from steerlab.sae.units import steering_unit
from steerlab.steering.refs import FeatureRef
from steerlab.steering.variant import Variant

SCORING_PROMPTS = (
    "What is your favourite season and why?",
    "Can you recommend a book for a long train ride?",
    "How should I spend a rainy afternoon?",
    "Tell me something interesting about mountains.",
    "What makes a good breakfast?",
    "How do I keep a houseplant alive?",
)


@dataclass
class AutoSteerConfig:
    """How hard AutoSteer searches; the defaults fit a CPU (about a minute on the default model)."""

    push: tuple[float, ...] = (0.2, 0.35, 0.5)
    """Nudge sizes tried per candidate, as fractions of the residual stream's median norm at the
    hookpoint; each becomes a per-feature strength (see ``strengths_for``)."""
    strengths: tuple[float, ...] | None = None
    """Or fixed strengths in steering units (``sae.units``: Ember's range), the same for every feature."""
    pool: int = 12
    """Candidates screened at the middle strength of the grid."""
    n_candidates: int = 4
    """The best screened candidates, tried at every strength of the grid."""
    per_source: int = 4
    """Candidates taken from each source before merging into the pool."""
    combine_top: int = 3
    """Combinations (pairs and the triple) of this many best single edits are tried too."""
    n_prompts: int = 3
    prompts: tuple[str, ...] | None = None
    """Scoring prompts (user messages); default: the first ``n_prompts`` of ``SCORING_PROMPTS``."""
    stimulus_size: int = 6
    stimulus_tokens: int = 32
    max_new_tokens: int = 24
    """Length of each scored reply."""
    parts: tuple[str, ...] = PARTS
    """Which score parts enter the harmonic mean (concept, relevance, fluency)."""
    concept_gain_full: float = 0.3
    concept_margin: float = 0.1
    confirm: int = 4
    """The best this many edit sets are generated again on ``confirm_prompts`` and chosen by their mean
    over both prompt sets: the best of ~30 trials on 3 prompts is partly luck (its score is inflated, as
    any maximum over noisy scores is), and fresh prompts tell luck from effect. 0: off. Chosen on the
    steering evaluation's development split (``benchmarks/autosteer_dev.py``,
    ``docs/bench_autosteer_dev.json``): mean combined 0.100 without, 0.122 with."""
    n_confirm_prompts: int = 3
    confirm_prompts: tuple[str, ...] | None = None
    """Prompts for the confirmation; default: the ``SCORING_PROMPTS`` the scoring did not use, at most
    ``n_confirm_prompts``."""
    seed: int = 0

    @classmethod
    def quick(cls) -> AutoSteerConfig:
        """About half the generation work of the default: what the server runs unless told otherwise, to
        answer inside the goodfire SDK's 60 s timeout on a CPU (``benchmarks/autosteer_speed.py``)."""
        return cls(
            pool=8, n_candidates=2, combine_top=2, n_prompts=2, max_new_tokens=20, stimulus_size=4, confirm=0
        )  # no confirmation: it would add ~50% to a search that must answer within 60 s

    def max_trials(self) -> int:
        """Edit sets a search scores at most: the unsteered replies, the screened pool, the other strengths
        of the best candidates, and the combinations (pairs, triples, ... at full and half strength)."""
        grid = len(self.strengths if self.strengths is not None else self.push)
        combos = 2 * max(0, 2**self.combine_top - self.combine_top - 1)
        return 1 + self.pool + self.n_candidates * max(0, grid - 1) + combos

    def scoring_prompts(self) -> list[str]:
        return list(self.prompts or SCORING_PROMPTS[: self.n_prompts])

    def confirmation_prompts(self) -> list[str]:
        """Where the best ``confirm`` edit sets are scored again (none when ``confirm`` is 0)."""
        if self.confirm < 1:
            return []
        if self.confirm_prompts is not None:
            return list(self.confirm_prompts)
        used = set(self.scoring_prompts())
        return [p for p in SCORING_PROMPTS if p not in used][: self.n_confirm_prompts]

    def token_estimate(self, trials: int | None = None) -> int:
        """Tokens a search runs through the model: the stimulus, then per trial ``n_prompts`` replies, each
        its prompt and ``max_new_tokens`` (``trials``: how many ran; default ``max_trials()``). What a server
        reserves from the key's tokens/min before it starts, and settles with the trials that ran."""
        n_trials = self.max_trials() if trials is None else trials
        n_prompts = len(self.prompts) if self.prompts else self.n_prompts
        confirmed = (self.confirm + 1) * len(self.confirmation_prompts())  # and the unsteered replies there
        replies = (n_trials * n_prompts + confirmed) * (PROMPT_TOKENS + self.max_new_tokens)
        return stimulus_token_estimate(self.stimulus_size, self.stimulus_tokens) + replies


@dataclass
class Trial:
    """One edit set tried on the scoring prompts, with its mean scores."""

    edits: list[tuple[int, float]]
    score: float
    concept: float
    relevance: float
    fluency: float
    replies: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[float, float]:
        return self.score, self.concept * self.fluency


@dataclass
class AutoSteerResult:
    goal: str
    edits: list[tuple[FeatureRef, float]]
    """The chosen nudges, ``(feature, strength)``; empty when no candidate beat doing nothing."""
    best: Trial
    unsteered: Trial
    trials: list[Trial]
    """Every edit set tried, best first."""
    candidates: list[Candidate]
    stimulus: ContrastiveStimulus
    base_model: str = "default"
    sae_id: str | None = None

    def __iter__(self):
        return iter(f for f, _ in self.edits)

    def __len__(self) -> int:
        return len(self.edits)

    def as_dict(self) -> dict[FeatureRef, float]:
        """``{feature: strength}``, what ``Variant.set`` (ours or the goodfire SDK's) accepts."""
        return dict(self.edits)

    def variant(self, base_model: str | None = None) -> Variant:
        variant = Variant(base_model or self.base_model, sae_id=self.sae_id)
        for feature, strength in self.edits:
            variant.set(feature, strength)
        return variant

    @property
    def controller(self):
        """The Ember controller of ``variant()``."""
        return self.variant().controller


def auto_steer(
    lm,
    sae,
    goal: str,
    *,
    config: AutoSteerConfig | None = None,
    search=None,
    labels=None,
    sae_id: str | None = None,
    embed=None,
    lexical=None,
) -> AutoSteerResult:
    """Find nudges that make the model pursue ``goal`` while staying fluent and on the question.
    ``search``: a ``FeatureSearch`` over this SAE (adds label-search candidates); ``labels``: index ->
    label; ``embed``/``lexical``: override the sentence embedder / add a word-list checker."""
    cfg = config or AutoSteerConfig()
    if sae_id is None:
        from steerlab.features.identity import sae_identity

        sae_id = sae_identity(sae)
    stimulus = generate_contrastive_stimulus(
        lm, goal, n=cfg.stimulus_size, max_new_tokens=cfg.stimulus_tokens, seed=cfg.seed, sae=sae
    )
    sources = {
        "search": search_candidates(search, sae, goal, cfg.per_source),
        "mention": mention_candidates(lm, sae, goal, cfg.per_source),
        "contrast": contrast_candidates(lm, sae, stimulus, cfg.per_source),
        "gradient": gradient_candidates(lm, sae, stimulus, goal, cfg.per_source),
    }
    candidates = merge_candidates(sources, cfg.pool, labels)
    search_run = _StrengthSearch(lm, sae, goal, cfg, embed, lexical)
    grids = {c.index: strengths_for(sae, c.index, cfg, search_run.resid_norm) for c in candidates}
    middle = len(next(iter(grids.values()), [0])) // 2
    trials = search_run.run([[(i, grid[middle])] for i, grid in grids.items()])  # screen the pool
    kept = list(dict.fromkeys(t.edits[0][0] for t in sorted(trials, key=lambda t: t.key, reverse=True)))
    trials += search_run.run(
        [[(i, s)] for i in kept[: cfg.n_candidates] for k, s in enumerate(grids[i]) if k != middle]
    )
    trials += search_run.run(_combinations(trials, cfg.combine_top))
    trials.sort(key=lambda t: t.key, reverse=True)
    unsteered = search_run.unsteered
    confirm_prompts = cfg.confirmation_prompts()
    if confirm_prompts and trials:
        fresh = _StrengthSearch(lm, sae, goal, cfg, embed, lexical, prompts=confirm_prompts)
        top = [t for t in trials if t.edits][: cfg.confirm]
        confirmed = [_pooled(t, again) for t, again in zip(top, fresh.run([t.edits for t in top]))]
        confirmed.sort(key=lambda t: t.key, reverse=True)
        trials = confirmed + [t for t in trials if all(t is not c for c in top)]
        unsteered = _pooled(unsteered, fresh.unsteered)
    best = trials[0] if trials and trials[0].key > unsteered.key else unsteered
    label_of = {c.index: c.label for c in candidates}
    edits = [(FeatureRef.of(i, sae_id, label_of.get(i, "")), float(s)) for i, s in best.edits]
    return AutoSteerResult(
        goal, edits, best, unsteered, trials, candidates, stimulus, getattr(lm, "name", "default"), sae_id
    )


def strengths_for(sae, index: int, cfg: AutoSteerConfig, resid_norm: float) -> list[float]:
    """The grid for one feature in steering units (``sae.units.steering_unit``). Why relative to the
    residual norm: what decides whether steering shows (or wrecks the text) is how far the residual
    moves relative to its own size. With the calibrated unit the default pushes land at about 0.4, 0.7
    and 1.0 (the unit is itself a push, ``steering_push`` of the norm); in quantile units
    (``STEERLAB_STEERING_UNIT=quantile``) they are ~3-8, since a unit is then a strong activation of the
    feature, whose push differs ~5x between features. ``resid_norm`` (measured on the scoring prompts) is
    used only for an SAE with no calibrated ``residual_norm``."""
    if cfg.strengths is not None:
        return [float(s) for s in cfg.strengths]
    step = float(steering_unit(sae)[index]) * float(sae.W_dec[index].norm())
    norm = sae.cfg.residual_norm or resid_norm  # the norm the unit is relative to, so the grid is push / steering_push
    return [round(p * norm / step, 2) for p in cfg.push]


def residual_norm(lm, sae, conversations: list[list[dict]]) -> float:
    """Median norm of the residual at the SAE's hookpoint over the prompts' tokens, skipping the
    first token of each (the attention sink, ~100x larger than the rest)."""
    import torch

    from steerlab.models.hooks import forward_to_hookpoint
    from steerlab.steering.conversation import prompt_ids

    norms = []
    for messages in conversations:
        ids = torch.tensor([prompt_ids(lm.tokenizer, messages)], device=lm.device)
        norms.append(forward_to_hookpoint(lm.model, ids, sae.cfg.hookpoint)[0, 1:].float().norm(dim=-1).cpu())
    return float(torch.cat(norms).median())


class _StrengthSearch:
    """Generates and scores edit sets on the scoring prompts, against the unsteered replies."""

    def __init__(self, lm, sae, goal: str, cfg: AutoSteerConfig, embed, lexical, prompts: list[str] | None = None):
        self.lm, self.sae, self.goal, self.cfg = lm, sae, goal, cfg
        texts = prompts if prompts is not None else cfg.scoring_prompts()
        self.prompts = [[{"role": "user", "content": t}] for t in texts]
        base = self._generate([None] * len(self.prompts), list(range(len(self.prompts))))
        self.scorer = ReplyScorer(
            lm,
            goal,
            self.prompts,
            base,
            lexical=lexical,
            embed=embed,
            concept_gain_full=cfg.concept_gain_full,
            concept_margin=cfg.concept_margin,
        )
        self.unsteered = self._trials([[]], base)[0]
        self.resid_norm = residual_norm(lm, sae, self.prompts)

    def _generate(self, steering: list, prompt_index: list[int]):
        rows = [Row(self.prompts[i], s) for s, i in zip(steering, prompt_index)]
        return generate_rows(
            self.lm, self.sae, rows, max_new_tokens=self.cfg.max_new_tokens, temperature=0.0, seed=self.cfg.seed
        )

    def run(self, edit_sets: list[list[tuple[int, float]]]) -> list[Trial]:
        if not edit_sets:
            return []
        n = len(self.prompts)
        steering = [_variant(edits) for edits in edit_sets for _ in range(n)]
        replies = self._generate(steering, list(range(n)) * len(edit_sets))
        return self._trials(edit_sets, replies)

    def _trials(self, edit_sets, replies) -> list[Trial]:
        n = len(self.prompts)
        scores = self.scorer.score(list(range(n)) * len(edit_sets), replies)
        trials = []
        for k, edits in enumerate(edit_sets):
            block = scores[k * n : (k + 1) * n]
            trials.append(
                Trial(
                    list(edits),
                    float(np.mean([s.combined(self.cfg.parts) for s in block])),
                    float(np.mean([s.concept for s in block])),
                    float(np.mean([s.relevance for s in block])),
                    float(np.mean([s.fluency for s in block])),
                    [r.text for r in replies[k * n : (k + 1) * n]],
                )
            )
        return trials


def _pooled(first: Trial, second: Trial) -> Trial:
    """One edit set's scores over both prompt sets (each trial's figures are means over its prompts)."""
    n, m = len(first.replies), len(second.replies)

    def mean(a: float, b: float) -> float:
        return (a * n + b * m) / max(1, n + m)

    return Trial(
        list(first.edits),
        mean(first.score, second.score),
        mean(first.concept, second.concept),
        mean(first.relevance, second.relevance),
        mean(first.fluency, second.fluency),
        first.replies + second.replies,
    )


def _variant(edits: list[tuple[int, float]]) -> Variant:
    variant = Variant("autosteer", sae_id="autosteer")
    for index, strength in edits:
        variant.set(index, strength)
    return variant


def _combinations(singles: list[Trial], top: int) -> list[list[tuple[int, float]]]:
    """Pairs and the triple (etc.) of the ``top`` best distinct features, each at its best strength,
    at full and half strength."""
    best: dict[int, Trial] = {}
    for trial in sorted(singles, key=lambda t: t.key, reverse=True):
        index = trial.edits[0][0]
        if index not in best and trial.score > 0:
            best[index] = trial
    chosen = list(best.items())[:top]
    out = []
    for size in range(2, len(chosen) + 1):
        for group in combinations(chosen, size):
            for factor in (1.0, 0.5):
                out.append([(i, t.edits[0][1] * factor) for i, t in group])
    return out
