"""The explainer interface and the context helpers every explainer and scorer shares.

An explainer turns features (with their examples) into short noun-phrase labels. A failure on one
feature is ``None`` for that feature, never an exception for the batch: the labeling run goes on and
the feature simply stays unlabeled (a later run retries it).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

from steerlab.features.schema import Example, Feature, Label

MAX_LABEL_CHARS = 80
MAX_LABEL_WORDS = 10


class Explainer(ABC):
    """Writes labels for features; ``name`` goes into ``Label.explainer`` (e.g. ``offline:concepts``)."""

    name: str = "explainer"

    @abstractmethod
    def explain(self, features: Sequence[Feature]) -> list[Label | None]:
        """One label (or None = could not explain) per feature, in order."""


def activating_examples(feature: Feature) -> list[Example]:
    """Top examples first, then quantile examples that fired: the evidence a feature fires on."""
    return [e for e in feature.examples_of("top") if e.max_act > 0] or [
        e for e in feature.examples_of("quantile") if e.max_act > 0
    ]


def negative_examples(feature: Feature) -> list[Example]:
    """Contexts where the feature did not fire: non-activating ones, plus random ones with zero activation."""
    return feature.examples_of("nonactivating") + [e for e in feature.examples_of("random") if e.max_act <= 0]


def window(example: Example, before: int = 24, after: int = 4) -> tuple[int, int]:
    """Token span ``[start, end)`` around the strongest activation (the middle for non-firing examples).

    The residual stream at a position only sees tokens up to it, so the window leans left.
    """
    n = len(example.tokens)
    center = example.max_position if example.max_act > 0 else n // 2
    center = min(max(center, 0), max(n - 1, 0))
    return max(0, center - before), min(n, center + after + 1)


def context_text(example: Example, before: int = 24, after: int = 4) -> str:
    """Plain text of the window around the strongest activation, whitespace collapsed."""
    start, end = window(example, before, after)
    return " ".join("".join(example.tokens[start:end]).split())


def highlighted_text(example: Example, before: int = 32, after: int = 8, threshold: float = 0.3) -> str:
    """Window text with every token firing at >= ``threshold`` x max wrapped in ``<<...>>``."""
    start, end = window(example, before, after)
    cut = threshold * example.max_act if example.max_act > 0 else float("inf")
    parts = []
    for token, act in zip(example.tokens[start:end], example.acts[start:end]):
        if act >= cut and token.strip():
            lead = token[: len(token) - len(token.lstrip())]
            parts.append(f"{lead}<<{token.strip()}>>")
        else:
            parts.append(token)
    return " ".join("".join(parts).replace("\n", " ").split())


_PREFIX = re.compile(r"^(label|answer|explanation|feature|concept)\s*[:\-]\s*", re.IGNORECASE)
_REFUSAL = re.compile(r"\b(i cannot|i can't|i'm sorry|as an ai|unable to|no clear|unclear|n/a)\b", re.IGNORECASE)
_BAD_CHARS = re.compile(r"[{}\[\]<>|\\]|```")


def clean_label(raw: str | None) -> str | None:
    """A short noun phrase from an LLM answer, or None if the answer is empty, overlong or garbage."""
    if not raw or not isinstance(raw, str):
        return None
    lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
    if not lines:
        return None
    if _BAD_CHARS.search(lines[0]):
        return None
    text = _PREFIX.sub("", lines[0]).strip().strip("\"'`*").strip().rstrip(".").strip()
    if not text or _REFUSAL.search(text):
        return None
    if len(text) > MAX_LABEL_CHARS or len(text.split()) > MAX_LABEL_WORDS:
        return None
    if not re.search(r"[A-Za-z]", text):
        return None
    return text
