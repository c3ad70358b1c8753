"""Steering evaluation: does an edit set put a concept into replies without wrecking them, and how
does that compare with simply asking for the concept in a system prompt?

For one concept and a prompt set, three replies per prompt come from one batched generation pass:
``unsteered`` (the reference every score is measured against), ``steered`` (the edits) and
``prompted`` (no edits; a system prompt asking for the concept, ``prompting_system_prompt``).
Each reply gets concept presence, instruction relevance and fluency in [0, 1] and their harmonic
mean (AxBench's aggregate, 0 if any part is 0); see ``scoring`` for the exact definitions. The
prompted replies are scored under the *plain* prompt too, so both methods are judged on the same
footing. Use prompts that were not used to choose the edits (AutoSteer picks strengths on its own
``SCORING_PROMPTS``), or the steered figure flatters itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from steerlab.analysis.autosteer_generate import Reply, Row, generate_rows
from steerlab.analysis.scoring import PARTS, ReplyScore, ReplyScorer, word_list_checker
from steerlab.analysis.stimulus import goal_instruction
from steerlab.steering.variant import Variant

EVAL_PROMPTS = (
    "What is the best way to learn a new language?",
    "Describe your ideal holiday.",
    "How can I get better sleep?",
    "What should I cook for dinner tonight?",
    "Explain why the sky is blue.",
    "Give me advice on saving money.",
    "What is your opinion on public transport?",
    "How do I write a good birthday card?",
)
METHODS = ("unsteered", "steered", "prompted")


@dataclass
class Concept:
    """What to steer toward and how to recognise it."""

    name: str
    description: str
    """What concept presence is measured against (sentence embedding), e.g. "pirate speech"."""
    instruction: str | None = None
    """The goal for AutoSteer and the prompting baseline, e.g. "talk like a pirate"; default: the
    description as a topic."""
    words: Sequence[str] | None = None
    """Optional lexical checker: words whose presence marks the concept (see ``word_list_checker``)."""
    density_full: float = 0.1

    @property
    def goal(self) -> str:
        return self.instruction or self.description

    def checker(self) -> Callable[[str], float] | None:
        return word_list_checker(self.words, self.density_full) if self.words else None


def prompting_system_prompt(concept: Concept) -> str:
    return f"You are a helpful assistant. In every reply, {goal_instruction(concept.goal)}."


@dataclass
class MethodScores:
    method: str
    concept: float
    relevance: float
    fluency: float
    combined: float
    """Mean over prompts of each reply's harmonic mean (not the harmonic mean of the means)."""
    lexical: float | None
    similarity: float = 0.0
    """Mean raw cosine of the replies with the concept description (diagnostics)."""
    replies: list[str] = field(default_factory=list)


@dataclass
class SteeringEvaluation:
    concept: str
    methods: dict[str, MethodScores]
    edits: list[tuple[int, float]]
    prompts: list[str]
    scorer: ReplyScorer | None = field(default=None, repr=False, compare=False)
    """The scorer the methods were judged by (against this run's unsteered replies), for controls."""

    def score_texts(self, name: str, texts: Sequence[str], parts: Sequence[str] = PARTS) -> MethodScores:
        """Score other replies (``texts[i]`` answers prompt ``i``) exactly as the methods were: a control,
        e.g. another concept's replies or on-concept word salad, which a strict evaluation must rate low."""
        if self.scorer is None or len(texts) != len(self.prompts):
            raise ValueError(f"need one text per prompt ({len(self.prompts)}) and the evaluation's scorer")
        tokenizer = self.scorer.lm.tokenizer
        replies = [Reply(t, tokenizer.encode(t, add_special_tokens=False), [], "stop") for t in texts]
        return summarize(name, self.scorer.score(list(range(len(texts))), replies), list(texts), parts)

    @property
    def winner(self) -> str:
        """ "steered" or "prompted", whichever has the higher combined score (ties: prompted, the
        cheaper method)."""
        steered, prompted = self.methods["steered"].combined, self.methods["prompted"].combined
        return "steered" if steered > prompted else "prompted"

    def to_dict(self) -> dict:
        return {
            "concept": self.concept,
            "edits": [list(e) for e in self.edits],
            "winner": self.winner,
            "methods": {k: asdict(v) for k, v in self.methods.items()},
        }


def as_variant(edits, sae_id: str = "eval") -> Variant:
    """A Variant from what a caller holds: a Variant, an AutoSteer result, a ``{feature: value}``
    dict or ``[(feature, value), ...]`` (features as indices or references)."""
    if isinstance(edits, Variant):
        return edits
    if hasattr(edits, "variant") and callable(edits.variant):
        return edits.variant()
    items = edits.items() if isinstance(edits, dict) else edits
    variant = Variant("eval", sae_id=sae_id)
    for feature, value in items:
        variant.set(feature, value)
    return variant


def evaluate_steering(
    lm,
    sae,
    concept: Concept,
    edits,
    prompts: Sequence[str] = EVAL_PROMPTS,
    *,
    max_new_tokens: int = 32,
    temperature: float = 0.6,
    seed: int = 0,
    embed=None,
    parts: Sequence[str] = PARTS,
) -> SteeringEvaluation:
    """Score ``edits`` against the unsteered model and the prompting baseline on ``prompts``."""
    variant = as_variant(edits)
    plain = [[{"role": "user", "content": p}] for p in prompts]
    system = {"role": "system", "content": prompting_system_prompt(concept)}
    rows = [Row(m) for m in plain] + [Row(m, variant) for m in plain] + [Row([system, *m]) for m in plain]
    replies = generate_rows(lm, sae, rows, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    n = len(prompts)
    scorer = ReplyScorer(lm, concept.description, plain, replies[:n], lexical=concept.checker(), embed=embed)
    scores = scorer.score(list(range(n)) * 3, replies)
    methods = {}
    for k, method in enumerate(METHODS):
        block = scores[k * n : (k + 1) * n]
        methods[method] = summarize(method, block, [r.text for r in replies[k * n : (k + 1) * n]], parts)
    edit_list = [(f.index, float(v)) for f, v, _ in variant.edits]
    return SteeringEvaluation(concept.name, methods, edit_list, list(prompts), scorer)


def summarize(method: str, scores: list[ReplyScore], replies: list[str], parts: Sequence[str] = PARTS) -> MethodScores:
    lexical = [s.lexical for s in scores if s.lexical is not None]
    return MethodScores(
        method,
        _mean(s.concept for s in scores),
        _mean(s.relevance for s in scores),
        _mean(s.fluency for s in scores),
        _mean(s.combined(parts) for s in scores),
        _mean(lexical) if lexical else None,
        _mean(s.concept_similarity for s in scores),
        replies,
    )


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else 0.0
