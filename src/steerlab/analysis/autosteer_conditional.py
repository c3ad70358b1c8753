"""AutoConditional: "when talking about X, do Y" -> a trigger feature with a threshold, plus edits for Y.

1. **Parse** the specification into a trigger topic X and an optional effect Y (the part after the
   first comma, semicolon or "then"): "when the user asks about cooking, talk like a pirate".
2. **Trigger**: label search on X (when a feature database is given) and a templated contrast:
   user messages about X against the same templates about everyday neutral topics (the ones least like X),
   so the only difference is the topic words. Of those candidates, the one whose activation best separates the
   two sides is kept (a trigger only reads, so it need not be steerable). Its threshold (per-feature
   units, compared per token) is put between the neutral conversations' largest activation and the
   typical peak on the topic conversations, so the scope turns on for X and not for small talk.
3. **Effect**: ``auto_steer`` on Y. The result reads as a condition group (the goodfire SDK's
   ``AutoConditional`` returns only that), so ``variant.set_when(result, edits)`` works, and
   ``result.variant()`` gives the whole conditional variant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from steerlab.analysis.autosteer import AutoSteerConfig, AutoSteerResult, auto_steer
from steerlab.analysis.codes import conversation_codes, labeler
from steerlab.analysis.contrast import contrast
from steerlab.analysis.stimulus import neutral_conversations, topic_conversations
from steerlab.errors import InvalidInputError
from steerlab.steering.conditions import ConditionGroup, as_condition_group
from steerlab.steering.refs import FeatureRef
from steerlab.steering.variant import Variant

_LEAD = re.compile(r"^\s*(when(ever)?|if|while|once)\s+", re.I)
_SUBJECT = re.compile(
    r"^((the\s+)?(user|conversation|person|someone|we|you|they|text|topic|chat)\s+)?"
    r"((is|are)\s+)?(talking|talks|talk|asks|ask|asking|mentions|mention|writes|writing|"
    r"discusses|discussing|discuss|is|turns|turn|goes)?\s*(to\s+)?(about\s+)?",
    re.I,
)
_SPLIT = re.compile(r"\s*(?:,|;|\bthen\b)\s*", re.I)


def parse_specification(specification: str) -> tuple[str, str | None]:
    """``(trigger topic, effect goal or None)`` of "when X, Y" / "if X then Y" / "X"."""
    text = specification.strip().rstrip(".!")
    if not text:
        raise InvalidInputError(
            "must be a non-empty description, e.g. 'when talking about food, talk like a pirate'", field="specification"
        )
    parts = _SPLIT.split(_LEAD.sub("", text), maxsplit=1)
    trigger = _SUBJECT.sub("", parts[0]).strip() or parts[0].strip()
    effect = parts[1].strip() if len(parts) > 1 and parts[1].strip() else None
    return trigger, effect


@dataclass
class AutoConditionalResult:
    specification: str
    trigger_text: str
    effect_text: str | None
    trigger: FeatureRef
    threshold: float
    """Per-feature units; the scope turns on at the first token where the trigger exceeds it."""
    steer: AutoSteerResult | None
    base_model: str = "default"
    sae_id: str | None = None

    @property
    def condition(self) -> ConditionGroup:
        return as_condition_group(self.trigger > self.threshold)

    # The goodfire SDK's ConditionalGroup shape, so variant.set_when(result, ...) accepts it.
    @property
    def conditionals(self):
        return self.condition.items

    @property
    def operator(self) -> str:
        return self.condition.op

    def json(self) -> dict:
        return self.condition.json()

    @property
    def edits(self) -> list[tuple[FeatureRef, float]]:
        return list(self.steer.edits) if self.steer is not None else []

    def variant(self, base_model: str | None = None) -> Variant:
        """A variant that applies the effect's edits from the first token where the trigger fires."""
        variant = Variant(base_model or self.base_model, sae_id=self.sae_id)
        variant.set_when(self.condition, dict(self.edits))
        return variant


def auto_conditional(
    lm,
    sae,
    specification: str,
    *,
    config: AutoSteerConfig | None = None,
    search=None,
    labels=None,
    sae_id: str | None = None,
    embed=None,
    lexical=None,
) -> AutoConditionalResult:
    """Build the conditional for ``specification`` (see module doc)."""
    trigger_text, effect_text = parse_specification(specification)
    if sae_id is None:
        from steerlab.features.identity import sae_identity

        sae_id = sae_identity(sae)
    index, threshold = find_trigger(lm, sae, trigger_text, search=search)
    trigger = FeatureRef.of(index, sae_id, labeler(labels)(index))
    steer = None
    if effect_text:
        steer = auto_steer(
            lm,
            sae,
            effect_text,
            config=config,
            search=search,
            labels=labels,
            sae_id=sae_id,
            embed=embed,
            lexical=lexical,
        )
    return AutoConditionalResult(
        specification, trigger_text, effect_text, trigger, threshold, steer, getattr(lm, "name", "default"), sae_id
    )


def find_trigger(lm, sae, topic: str, *, search=None, candidates: int = 4) -> tuple[int, float]:
    """The feature that best tells conversations about ``topic`` from neutral ones (about topics least like it:
    "weather" is not contrasted with "the weather"), and its threshold. Candidates: the contrast of topic and
    neutral conversations, and the database's label search; the measured margin picks among them. Label search, not
    the default (labels re-scored by contexts): on the development texts of benchmarks/autoconditional_trigger.py
    20 of 42 triggers work with label search, 19 with the default or with none (docs/steering.md)."""
    on, off = topic_conversations(topic), neutral_conversations(avoid=topic)
    pool = [f.index for f in contrast(lm, sae, on, off, k_to_add=candidates, k_to_remove=0).dataset_1_features]
    if search is not None:
        pool = [int(h.index) for h in search.search(topic, top_k=candidates, by="label")] + pool
    if not pool:
        raise InvalidInputError(f"found no feature that responds to {topic!r}", field="specification")
    peaks_on = peak_activations(lm, sae, on, pool)
    peaks_off = peak_activations(lm, sae, off, pool)
    typical_on = peaks_on.median(0).values
    margin = typical_on - peaks_off.max(0).values  # > 0: separates every neutral from a typical topic chat
    best = int(margin.argmax())
    low, high = float(peaks_off[:, best].max()), float(typical_on[best])
    threshold = (low + high) / 2 if high > low else high / 2
    return pool[best], round(max(threshold, 0.05), 3)


def peak_activations(lm, sae, conversations, features: list[int]) -> torch.Tensor:
    """``[conversations, features]``: each feature's largest activation (per-feature units)."""
    scale = sae.feature_scale.float().clamp_min(1e-12)
    rows = []
    for messages in conversations:
        codes = conversation_codes(lm, sae, messages).codes[:, features]
        rows.append((codes / scale[features].to(codes.device)).max(0).values.cpu())
    return torch.stack(rows)
