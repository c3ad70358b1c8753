"""An offline explainer that proposes labels from several kinds of evidence and picks one by AUC.

Candidates, all read from the examples the explainer is shown (under the held-out scorer: the choice
half only, ``score_heldout.choice_view``):

- **contrast**: what the firing contexts are about, against the shared background of non-firing
  contexts (embedding mean of the firing views minus the background's), and the vocabulary phrases
  nearest that direction. The vocabulary is WordNet's nouns (``wordnet.py``) plus ``"<format> code"``
  for Pygments' languages and formats;
- **keywords**: the words of the windows around the strongest tokens (20 before, 4 after: what a
  reader sees), lemmatized (``cats`` -> ``cat``), that recur across windows and are rare in the
  background (df x idf);
- **hypernyms**: WordNet hypernyms and lexicographer files shared by several keywords
  (``flour``, ``sugar``, ``butter`` -> ``food``/``foodstuff``), and the class most peak words share
  (``august``, ``april``, ``may`` -> ``Gregorian calendar month``);
- **tokens**: the peak token as a word (``"weather"``) and as a token label (``"cat" tokens``);
- **logit effects**: the words among the tokens the feature promotes through the unembedding;
- **language**: the fastText identifier decides outright (``French text``), as in ``offline.py``.

Each candidate is embedded and scored by ROC AUC of its similarity to the firing contexts vs the
background (the same views the scorer uses, ``views.py``), the best wins. The label's final score and
whether it is shown as a concept is the held-out scorer's business (``score_heldout.py``), on contexts
this choice never saw.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from steerlab.features.concept_windows import example_window
from steerlab.features.explain.base import activating_examples
from steerlab.features.explain.concepts import ConceptVocabulary
from steerlab.features.explain.language import NAMES, claimed_language, detect_language, dominant_language
from steerlab.features.explain.offline import (
    OfflineConfig,
    OfflineExplainer,
    example_text,
    normalize_token,
    token_evidence,
    token_phrase,
)
from steerlab.features.explain.views import ContextVectors, Encoder, auc
from steerlab.features.explain.wordnet import (
    lemmas,
    lemmatize,
    shared_class,
    vocabulary_phrases,
    vocabulary_vectors,
)
from steerlab.features.schema import Example, Feature, Label

_WORD = re.compile(r"[A-Za-z][a-z]{2,}")
WINDOW = (20, 4)
"""Tokens before / after the strongest token that keywords are read from (the strict check's window)."""
CONTRAST_CANDIDATES = 8
KEYWORD_CANDIDATES = 5
HYPERNYM_CANDIDATES = 3
PROMOTED_CANDIDATES = 3


def window_words(example: Example, before: int = WINDOW[0], after: int = WINDOW[1]) -> set[str]:
    """Distinct lowercase words of the window around the strongest token (background: around the middle)."""
    from steerlab.features.explain.base import window

    start, end = window(example, before, after)
    return {w.lower() for w in _WORD.findall("".join(example.tokens[start:end]))}


def word_lemmas(words: set[str]) -> set[str]:
    return {lem for lem in map(lemmatize, words) if lem is not None}


class EvidenceExplainer(OfflineExplainer):
    """Candidates from contrast, keywords, hypernyms, tokens, logit effects and language; best AUC wins."""

    name = "offline:evidence"

    def __init__(
        self,
        config: OfflineConfig | None = None,
        encode: Encoder | None = None,
        background: Sequence[Example] | None = None,
        cache_dir: Path | None = None,
        vocabulary: ConceptVocabulary | None = None,
    ):
        if vocabulary is None:
            phrases = vocabulary_phrases()
            vocabulary = ConceptVocabulary(phrases, vocabulary_vectors(phrases, cache_dir))
        self._word_df: Counter[str] = Counter()
        self._word_docs = 0
        super().__init__(vocabulary=vocabulary, config=config, encode=encode, background=background)

    def set_background(self, examples: Sequence[Example]) -> None:
        super().set_background(examples)
        unique = list({tuple(e.token_ids): e for e in examples if e.max_act <= 0}.values())
        self._word_df = Counter(lem for e in unique for lem in word_lemmas(window_words(e)))
        self._word_docs = len(unique)

    def _idf(self, lemma: str) -> float:
        return math.log((1 + self._word_docs) / (1 + self._word_df[lemma])) + 1.0

    def candidates(self, feature: Feature, acts: Sequence[Example], contrast: np.ndarray) -> list[str]:
        """Every label this feature's evidence proposes, in a fixed order (ties in AUC go to the first)."""
        vocab = self.vocabulary
        out: list[str] = []
        scores = vocab.vectors @ contrast
        for i in np.argsort(-scores)[: 4 * CONTRAST_CANDIDATES]:
            phrase = vocab.phrases[int(i)]
            if claimed_language(phrase) is None and len(out) < CONTRAST_CANDIDATES:
                out.append(phrase)
        per_window = [word_lemmas(window_words(e)) for e in acts]
        df = Counter(lem for ws in per_window for lem in ws)
        need = max(2, math.ceil(0.3 * len(acts)))
        keywords = sorted(
            (lem for lem, n in df.items() if n >= need), key=lambda lem: (-df[lem] * self._idf(lem), lem)
        )[: 2 * KEYWORD_CANDIDATES]
        out += keywords[:KEYWORD_CANDIDATES]
        shared: Counter[str] = Counter()
        table = lemmas()
        for lem in keywords:
            entry = table[lem]
            shared.update({*entry.hypernyms, entry.lexfile} - {"", "tops"})
        out += [h for h, n in shared.most_common(HYPERNYM_CANDIDATES) if n >= 2]
        peak_tokens = [normalize_token(e.tokens[min(e.max_position, len(e.tokens) - 1)]) for e in acts]
        kind = shared_class(peak_tokens)
        if kind is not None:  # different peak words of one kind: the kind (``april``, ``may`` -> a month)
            out.append(kind[0])
        peaks = Counter(peak_tokens)
        for token, _ in peaks.most_common(2):
            lem = lemmatize(token) if token.isalpha() and len(token) >= 3 else None
            if lem is not None:
                out.append(lem)
            if token:
                out.append(token_phrase(token))
        promoted = Counter()
        for effect in feature.promoted[:20]:
            word = effect.token.strip().lower()
            lem = lemmatize(word) if _WORD.fullmatch(word) else None
            if lem is not None:
                promoted[lem] += 1
        out += [lem for lem, _ in promoted.most_common(PROMOTED_CANDIDATES)]
        return list(dict.fromkeys(c for c in out if c))

    def explain(self, features: Sequence[Feature]) -> list[Label | None]:
        labels = super().explain(features)  # encodes the views; the token/language shortcuts come from here
        return [self._refine(f, lab) for f, lab in zip(features, labels)]

    def _explain_one(self, feature: Feature) -> Label | None:
        """The base explainer's label when a token or a language decides outright, else a marker."""
        cfg = self.config
        acts = activating_examples(feature)[: cfg.max_examples]
        if not acts:
            return None
        token, share = max(token_evidence(acts, self._token_background), key=lambda ts: ts[1], default=("", 0.0))
        if share >= cfg.single_token_share:
            return self._label(token_phrase(token), share)
        language = dominant_language(
            [example_text(e) for e in acts], self._language_background, share=cfg.language_share
        ) or self._window_language(acts)
        if language is not None:
            name, language_share = language
            text = f"{name} text"
            return self._label(f"{token_phrase(token)} in {text}" if share >= cfg.token_share else text, language_share)
        return Label(text="", explainer=self.name)  # decided in _refine

    def _window_language(self, acts: Sequence[Example]) -> tuple[str, float] | None:
        """The language of the windows a reader sees (a French passage inside an English page): most of
        the identified windows and at least half of all, not English, not common in the background."""
        codes = [detect_language(example_window(e).text) for e in acts]
        known = Counter(c for c in codes if c is not None)
        if sum(known.values()) < 3:
            return None
        code, n = known.most_common(1)[0]
        if code == "en" or n < 0.6 * sum(known.values()) or n < 0.5 * len(codes):
            return None
        if self._language_background.get(code, 0.0) > 0.3:
            return None
        return NAMES.get(code, code), n / len(codes)

    def _refine(self, feature: Feature, label: Label | None) -> Label | None:
        if label is None or label.text:
            return label
        acts = activating_examples(feature)[: self.config.max_examples]
        bg = self._background
        assert bg is not None
        pos = ContextVectors(acts, self.encode, self.config.contexts)
        contrast = pos.mean() - bg.mean()
        candidates = self.candidates(feature, acts, contrast)
        vecs = self.encode(candidates)
        values = auc(pos.similarity(vecs), bg.similarity(vecs))
        best = int(np.argmax(values))
        out = self._label(candidates[best], float(vecs[best] @ contrast))
        out.score_details["choice_auc"] = round(float(values[best]), 4)
        out.score_details["candidates"] = len(candidates)
        return out
