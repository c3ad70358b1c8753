"""Scoring labels: does a label pick the firing contexts out of a mix with non-firing ones?

``EmbeddingScorer`` (offline) compares the label's sentence embedding with each context's
(``explain/views.py``) and reports the ROC AUC of firing vs non-firing contexts. It reads the
feature's *quantile* examples, which the explainers never see, so a label is judged on held-out
evidence (it falls back to top examples, flagged ``in_sample``, when a feature has no quantile
examples). ``score_report`` summarizes the scores of a whole SAE.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence

import numpy as np

from steerlab.features.embeddings import EmbeddingCache
from steerlab.features.explain.base import negative_examples
from steerlab.features.explain.views import ContextVectors, Encoder, auc, view_texts
from steerlab.features.schema import Example, Feature, Label

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


class Scorer(ABC):
    """Fills ``Label.score`` / ``scorer`` / ``score_details``; a label it cannot score keeps ``score=None``."""

    name: str = "scorer"

    @abstractmethod
    def score(self, features: Sequence[Feature], labels: Sequence[Label | None]) -> list[Label | None]:
        """Scored copies of ``labels`` (None stays None), in order."""


def scored(label: Label, score: float | None, scorer: str, details: dict) -> Label:
    """A copy of ``label`` with a new score; the explainer's ``evidence`` survives in the details."""
    kept = {"evidence": label.score_details["evidence"]} if "evidence" in label.score_details else {}
    return label.model_copy(update={"score": score, "scorer": scorer, "score_details": {**kept, **details}})


def held_out_positives(feature: Feature, limit: int) -> tuple[list[Example], bool]:
    """Firing quantile examples (never shown to explainers); else top examples. Returns (examples, in_sample)."""
    held_out = [e for e in feature.examples_of("quantile") if e.max_act > 0]
    if len(held_out) >= 2:
        if len(held_out) > limit:  # spread over the quantile buckets, weak to strong
            held_out = [held_out[round(i * (len(held_out) - 1) / max(1, limit - 1))] for i in range(limit)]
        return held_out, False
    return [e for e in feature.examples_of("top") if e.max_act > 0][:limit], True


class EmbeddingScorer(Scorer):
    """AUC of label-vs-context similarity, firing vs non-firing contexts; offline, deterministic."""

    name = "embedding-auc"

    def __init__(
        self,
        encode: Encoder | None = None,
        max_positives: int = 6,
        max_negatives: int = 8,
        background: Sequence[Example] | None = None,
        contexts: str = "sentence",
    ):
        self.encode = encode or EmbeddingCache()
        self.contexts = contexts
        self.name = "embedding-auc" if contexts == "sentence" else f"embedding-auc:{contexts}"
        self.max_positives = max_positives
        self.max_negatives = max_negatives
        self.background = [e for e in background or () if e.max_act <= 0][:max_negatives]

    def score(self, features: Sequence[Feature], labels: Sequence[Label | None]) -> list[Label | None]:
        texts = [label.text for label in labels if label is not None]
        for f, label in zip(features, labels):  # encode the batch's contexts at once (the encoder is batch-fast)
            if label is not None:
                texts += view_texts(held_out_positives(f, self.max_positives)[0], self.contexts)
        label_vecs = dict(zip(texts, self.encode(texts))) if texts else {}
        return [
            self._score_one(f, label, label_vecs) if label is not None else None for f, label in zip(features, labels)
        ]

    def _score_one(self, feature: Feature, label: Label, label_vecs: dict) -> Label:
        positives, in_sample = held_out_positives(feature, self.max_positives)
        negatives = negative_examples(feature)[: self.max_negatives]
        if len(negatives) < 2:
            negatives = negatives + self.background
        if not positives or not negatives:
            return scored(label, None, self.name, {"reason": "no positive or no negative contexts"})
        vec = label_vecs[label.text][None, :]
        sim_pos = ContextVectors(positives, self.encode, self.contexts).similarity(vec)[0]
        sim_neg = ContextVectors(negatives, self.encode, self.contexts).similarity(vec)[0]
        value = float(auc(sim_pos, sim_neg))
        details = {
            "auc": round(value, 4),
            "n_pos": len(positives),
            "n_neg": len(negatives),
            "in_sample": in_sample,
            "mean_sim_pos": round(float(sim_pos.mean()), 4),
            "mean_sim_neg": round(float(sim_neg.mean()), 4),
        }
        return scored(label, value, self.name, details)


def score_report(labels: dict[int, Label], d_sae: int | None = None, bins: int = 10) -> dict:
    """Distribution of label scores over an SAE: counts, mean, quantiles and a histogram on [0, 1]."""
    scores = np.array([lab.score for lab in labels.values() if lab.score is not None], dtype=np.float64)
    counts, edges = np.histogram(scores, bins=bins, range=(0.0, 1.0))
    report = {
        "features": d_sae,
        "labeled": len(labels),
        "scored": int(scores.size),
        "scorers": dict(Counter(lab.scorer for lab in labels.values() if lab.score is not None)),
        "explainers": dict(Counter(lab.explainer for lab in labels.values())),
        "mean": round(float(scores.mean()), 4) if scores.size else None,
        "quantiles": {str(q): round(float(np.quantile(scores, q)), 4) for q in QUANTILES} if scores.size else {},
        "frac_at_least_0.8": round(float((scores >= 0.8).mean()), 4) if scores.size else None,
        "histogram": {"edges": [round(float(e), 2) for e in edges], "counts": counts.tolist()},
    }
    return report


def format_report(report: dict, width: int = 40) -> str:
    """Human-readable lines: summary, quantiles, and a text histogram."""
    lines = [
        f"labeled {report['labeled']}"
        + (f" of {report['features']}" if report["features"] else "")
        + f" features, scored {report['scored']}, mean score {report['mean']}"
    ]
    if report["quantiles"]:
        quantiles = report["quantiles"].items()
        lines.append("quantiles: " + "  ".join(f"p{round(float(q) * 100)}={v:.3f}" for q, v in quantiles))
    counts, edges = report["histogram"]["counts"], report["histogram"]["edges"]
    top = max(counts) if counts and max(counts) else 1
    for lo, hi, count in zip(edges, edges[1:], counts):
        lines.append(f"  [{lo:.1f}, {hi:.1f}) {'#' * round(width * count / top):<{width}} {count}")
    return "\n".join(lines)
