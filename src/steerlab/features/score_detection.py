"""Detection scoring through an LLM (as in EleutherAI's delphi): given the label and a shuffled mix of
firing and non-firing excerpts (no highlighting), the model says which excerpts match. The score is the
balanced accuracy of its answers, so a label that matches everything (or nothing) scores 0.5.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence

from steerlab.features.explain.base import context_text, negative_examples
from steerlab.features.explain.llm import ChatClient, LLMConfig, Messages
from steerlab.features.schema import Example, Feature, Label
from steerlab.features.score import Scorer, held_out_positives, scored

SYSTEM_PROMPT = """You check descriptions of a language-model feature. You get a description and numbered \
text excerpts. For each excerpt decide whether it matches the description (1) or not (0). Reply with a JSON \
list of 0s and 1s, one per excerpt, in order, and nothing else. Example reply for 4 excerpts: [1, 0, 0, 1]"""


def build_detection_prompt(label: str, excerpts: Sequence[str]) -> Messages:
    lines = "\n".join(f"{i + 1}. {text}" for i, text in enumerate(excerpts))
    user = f"Description: {label}\n\nExcerpts:\n{lines}\n\nJSON list of {len(excerpts)} answers:"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_answers(answer: str | None, n: int) -> list[int] | None:
    """The first JSON list in the answer if it holds exactly ``n`` 0/1 values; else None (garbage)."""
    if not answer:
        return None
    match = re.search(r"\[[^\[\]]*\]", answer)
    if not match:
        return None
    try:
        values = json.loads(match.group(0))
    except ValueError:
        return None
    if len(values) != n or not all(v in (0, 1, True, False) for v in values):
        return None
    return [int(v) for v in values]


class DetectionScorer(Scorer):
    """Balanced accuracy of an LLM's match/no-match calls on ``n_pos`` firing + ``n_neg`` non-firing excerpts."""

    def __init__(self, config: LLMConfig, n_pos: int = 5, n_neg: int = 5, seed: int = 0):
        self.client = ChatClient(config)
        self.n_pos, self.n_neg, self.seed = n_pos, n_neg, seed
        self.name = f"detection:{config.model}"

    def _trial(self, feature: Feature, label: Label) -> tuple[list[str], list[int], bool] | None:
        positives, in_sample = held_out_positives(feature, self.n_pos)
        negatives: list[Example] = negative_examples(feature)[: self.n_neg]
        if not positives or not negatives:
            return None
        mix = [(context_text(e, 32, 8), 1) for e in positives] + [(context_text(e, 32, 8), 0) for e in negatives]
        random.Random(f"{self.seed}/{feature.sae_id}/{feature.index}").shuffle(mix)
        return [text for text, _ in mix], [truth for _, truth in mix], in_sample

    def score(
        self, features: Sequence[Feature], labels: Sequence[Label | None], on_done: Callable[[], None] | None = None
    ) -> list[Label | None]:
        trials = [self._trial(f, lab) if lab is not None else None for f, lab in zip(features, labels)]
        asked = [i for i, t in enumerate(trials) if t is not None]
        answers = self.client.complete_all(
            [build_detection_prompt(labels[i].text, trials[i][0]) for i in asked], on_done
        )
        out = list(labels)
        for i, answer in zip(asked, answers):
            _, truth, in_sample = trials[i]
            calls = parse_answers(answer, len(truth))
            if calls is None:  # garbage or no answer: the label stays, unscored
                out[i] = scored(labels[i], None, self.name, {"reason": "no usable answer"})
                continue
            tpr = sum(c and t for c, t in zip(calls, truth)) / max(1, sum(truth))
            tnr = sum((not c) and (not t) for c, t in zip(calls, truth)) / max(1, len(truth) - sum(truth))
            value = 0.5 * (tpr + tnr)
            details = {
                "balanced_accuracy": round(value, 4),
                "tpr": round(tpr, 4),
                "tnr": round(tnr, 4),
                "n_pos": sum(truth),
                "n_neg": len(truth) - sum(truth),
                "in_sample": in_sample,
            }
            out[i] = scored(labels[i], value, self.name, details)
        return out
