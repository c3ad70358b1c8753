"""Labels without a network or an LLM: concept phrases and token evidence, chosen by sentence embedding.

Each feature's top contexts are embedded (``views.py``) and contrasted with a fixed background of
non-firing contexts; the concept phrase (``data/concepts.txt``) pointing furthest along that contrast
wins (nudged by the tokens the feature promotes). When most top examples peak on the same token
(by count, or by tf-idf against the background) and that token's label separates the contexts at
least as well, the label is the token instead (``"import" tokens``, ``commas``); a feature whose
top examples nearly all peak on one token is labeled by that token outright. When most top contexts
are in one non-English language (a language identifier, ``language.py``: the English-centric
encoder cannot tell), the label names the language (``French text``, or ``"le" tokens in French
text`` when a token also stands out).

Choosing by the contrast's mean rather than by a per-candidate AUC is deliberate: with ~10 examples
the AUC of 700 candidates is noisy and picking its maximum overfits (measured on held-out quantile
examples: mean AUC 0.58 vs 0.56). The feature's own non-activating examples are left to the scorer,
so the score is not inflated by the explainer having seen them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from steerlab.features.embeddings import EmbeddingCache
from steerlab.features.explain.base import Explainer, activating_examples, negative_examples
from steerlab.features.explain.concepts import ConceptVocabulary
from steerlab.features.explain.language import claimed_language, dominant_language, language_shares
from steerlab.features.explain.views import ContextVectors, Encoder, view_texts
from steerlab.features.label_format import PUNCTUATION_NAMES
from steerlab.features.schema import Example, Feature, Label


@dataclass
class OfflineConfig:
    max_examples: int = 8
    """Top examples read per feature (the scorer reads the quantile examples instead)."""
    background_size: int = 96
    """Shared non-firing contexts every feature is contrasted with."""
    token_share: float = 0.5
    """A token label is proposed when at least this share of top examples peak on (or contain) the token..."""
    single_token_share: float = 0.9
    """...and wins outright at this share: the feature is clearly about one token."""
    language_share: float = 0.6
    """A language label needs at least this share of top contexts identified as that language."""
    promoted_weight: float = 0.1
    """Weight of the promoted-tokens similarity when ranking concepts."""
    contexts: str = "sentence"
    """How contexts are embedded: ``sentence`` (encoder on the text) or ``tokens`` (mean of token
    embeddings: ~500x cheaper, slightly worse labels; see ``views.py``)."""


def normalize_token(token: str) -> str:
    """Peak-token key: stripped and lowercased; whitespace-only tokens keep their newlines."""
    stripped = token.strip()
    return stripped.lower() if stripped else ("\n" if "\n" in token else "")


def token_phrase(token: str) -> str:
    """Searchable phrase for a token: named punctuation, or ``"word" tokens``."""
    if token in PUNCTUATION_NAMES:
        return PUNCTUATION_NAMES[token]
    if token.isspace() or not token:
        return "whitespace"
    shown = token[:24].replace('"', "'")
    return f'"{shown}" tokens'


def example_text(example: Example) -> str:
    return "".join(example.tokens)


def promoted_text(feature: Feature) -> str:
    """The feature's top promoted tokens as one string (embedded as weak evidence for concepts)."""
    return " ".join(t.token.strip() for t in feature.promoted[:10] if t.token.strip())


class TokenBackground:
    """Document frequencies of tokens over background contexts: the idf of tf-idf."""

    def __init__(self, examples: Sequence[Example] = ()):
        self.df: Counter[str] = Counter()
        self.docs = 0
        for example in examples:
            self.docs += 1
            self.df.update({normalize_token(t) for t in example.tokens})

    def idf(self, token: str) -> float:
        return math.log((1 + self.docs) / (1 + self.df[token])) + 1.0


def token_evidence(examples: Sequence[Example], background: TokenBackground, top: int = 2) -> list[tuple[str, float]]:
    """Candidate tokens with the share of examples supporting them: peak tokens first, then tf-idf tokens."""
    n = len(examples)
    peaks = Counter(normalize_token(e.tokens[min(e.max_position, len(e.tokens) - 1)]) for e in examples)
    tfidf: Counter[str] = Counter()
    contains: Counter[str] = Counter()
    for e in examples:
        strong = {normalize_token(t) for t, a in zip(e.tokens, e.acts) if a >= 0.5 * e.max_act > 0}
        contains.update(strong)
        for tok in strong:
            tfidf[tok] += background.idf(tok)
    out = [(tok, count / n) for tok, count in peaks.most_common(top)]
    for tok, _ in tfidf.most_common(top):
        if tok not in dict(out):
            out.append((tok, contains[tok] / n))
    return out


class OfflineExplainer(Explainer):
    """Concept-phrase or token labels; deterministic for a fixed background."""

    name = "offline:concepts+tokens"

    def __init__(
        self,
        vocabulary: ConceptVocabulary | None = None,
        config: OfflineConfig | None = None,
        encode: Encoder | None = None,
        background: Sequence[Example] | None = None,
    ):
        self.config = config or OfflineConfig()
        self.vocabulary = vocabulary or ConceptVocabulary.load()
        self.encode = encode or EmbeddingCache()
        self._background: ContextVectors | None = None
        self._token_background = TokenBackground()
        self._language_background: Counter[str] = Counter()
        if background:
            self.set_background(background)

    def set_background(self, examples: Sequence[Example]) -> None:
        """Fix the shared non-firing contexts (labels then do not depend on how features are batched)."""
        unique = list({tuple(e.token_ids): e for e in examples if e.max_act <= 0}.values())
        step = max(1, len(unique) // self.config.background_size)
        chosen = unique[::step][: self.config.background_size]
        self._background = ContextVectors(chosen, self.encode, self.config.contexts)
        self._token_background = TokenBackground(chosen)
        self._language_background = language_shares([example_text(e) for e in chosen])

    def explain(self, features: Sequence[Feature]) -> list[Label | None]:
        if self._background is None:
            self.set_background([e for f in features for e in negative_examples(f)])
        texts = []  # encode the whole batch at once: batching is what makes the encoder fast
        for f in features:
            texts += view_texts(activating_examples(f)[: self.config.max_examples], self.config.contexts)
            texts += [promoted_text(f)] if promoted_text(f) else []
        self.encode(texts)
        return [self._explain_one(f) for f in features]

    def _explain_one(self, feature: Feature) -> Label | None:
        cfg, vocab, bg = self.config, self.vocabulary, self._background
        acts = activating_examples(feature)[: cfg.max_examples]
        if not acts:
            return None
        pos = ContextVectors(acts, self.encode, cfg.contexts)
        contrast = pos.mean() - bg.mean()  # [384]: from "anywhere" toward "where this feature fires"
        concept_scores = vocab.vectors @ contrast
        promoted = promoted_text(feature)
        if promoted and cfg.promoted_weight:
            concept_scores = concept_scores + cfg.promoted_weight * (vocab.vectors @ self.encode([promoted])[0])
        token, share = max(token_evidence(acts, self._token_background), key=lambda ts: ts[1], default=("", 0.0))
        if share >= cfg.single_token_share:
            return self._label(token_phrase(token), share)
        language = dominant_language(
            [example_text(e) for e in acts], self._language_background, share=cfg.language_share
        )
        best = self._best_concept(concept_scores, language[0] if language else None)
        text = vocab.phrases[best]
        if language is not None:
            name, language_share = language
            text = f"{name} text"
            return self._label(f"{token_phrase(token)} in {text}" if share >= cfg.token_share else text, language_share)
        if share >= cfg.token_share:
            candidate = token_phrase(token)
            vecs = np.stack([vocab.vectors[best], self.encode([candidate])[0]])
            margin = pos.similarity(vecs).mean(1) - (bg.similarity(vecs).mean(1) if len(bg) else 0.0)
            if margin[1] >= margin[0]:
                return self._label(candidate, share)
        return self._label(text, float(concept_scores[best]))

    def _best_concept(self, scores: np.ndarray, language: str | None) -> int:
        """The highest-scoring concept phrase, skipping phrases that claim a language ("Spanish text")
        the identifier did not find in the contexts: the encoder alone put language names on English
        features (e.g. gcloud man pages labeled "Spanish text")."""
        for i in np.argsort(-scores):
            claimed = claimed_language(self.vocabulary.phrases[int(i)])
            if claimed is None or claimed == language:
                return int(i)
        return int(np.argmax(scores))

    def _label(self, text: str, evidence: float) -> Label:
        """``evidence`` (concept: contrast along the phrase; token: share of top examples) orders features
        that share a label in search, strongest first; kept in ``score_details`` across scoring."""
        return Label(text=text, explainer=self.name, score_details={"evidence": round(evidence, 4)})
