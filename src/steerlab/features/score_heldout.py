"""A label scorer that cannot be fooled by its own explainer: choose on one half, score on the other.

The database keeps, per feature, 12 top examples, 10 quantile examples (two per activation bucket)
and 4 non-activating windows from a shared random pool. They are split once, deterministically:

- *choice* half (what explainers see, ``choice_view``): top and quantile examples of even rank, and
  pool windows of even sequence id (the explainers' shared background comes from these too);
- *held-out* half (what the scorer reads, ``held_out_contexts``): top and quantile examples of odd
  rank, one per quantile bucket, and pool windows of odd sequence id.

From the held-out half the scorer builds >= 20 firing contexts (each held-out example's strongest
token, then its next-strongest firing tokens: activations across the range) and >= 20 non-firing ones:
*random* (centers spread over the pool windows, silent everywhere) and *near-miss* (tokens of the
held-out firing examples where the feature is 0: same document, same topic, often the same token).
The score is the ROC AUC of label-vs-context similarity (``explain/views.py``), firing vs non-firing.

A label is shown as a concept only when it beats a null: the same AUC for ``null_size`` concept
phrases drawn at random (seeded per feature) from the vocabulary must stay below it in ``null_share``
of the draws (p90). A label that does not beat its null, or that names tokens, is replaced by a
description of what fires (``"aqu" tokens in Catalan text``, ``"cat" tokens in shell commands``) when
the held-out examples confirm the token, or else by ``unclear: fires on "aqu", "Are", "am"``. The
decision, the concept label it replaced and the figures go into ``score_details``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import numpy as np

from steerlab.features.concept_windows import Window, example_window, judge, language, looks_like_code
from steerlab.features.concepts import CODE_CONCEPTS, is_description
from steerlab.features.embeddings import EmbeddingCache
from steerlab.features.explain.language import CODES, NAMES, claimed_language, detect_language
from steerlab.features.explain.views import ContextVectors, Encoder, auc, view_texts
from steerlab.features.explain.wordnet import in_class, lemmatize, shared_class, spells, word_forms
from steerlab.features.schema import Example, Feature, Label
from steerlab.features.score import Scorer, scored

UNCLEAR = "unclear"
DECISIONS = ("concept", "fires-on", UNCLEAR)
MASKED_NULL_SHARE = 0.9
"""Quantile of the null a label must beat once its own word is blanked out (as ``null_share``; 1.0, every random
phrase, turned more word features into ``the word`` labels and lost 2 of the concept check's 56 tuning concepts)."""
_SPAN = 12
"""Tokens of context a non-firing center needs on each side (the long view reads 12 before it)."""


def is_held_out(example: Example) -> bool:
    """Which half an example belongs to (a pure function of the example, so every run splits alike)."""
    if example.kind == "nonactivating" or example.kind == "random":
        return (example.sequence_id if example.sequence_id is not None else example.rank) % 2 == 1
    return example.rank % 2 == 1


def choice_view(feature: Feature) -> Feature:
    """The feature with only its choice half of examples: what an explainer may look at."""
    return feature.model_copy(update={"examples": [e for e in feature.examples if not is_held_out(e)]})


def _at(example: Example, position: int) -> Example:
    """``example`` re-centered on a firing ``position``."""
    return example.model_copy(update={"max_position": position, "max_act": float(example.acts[position])})


def _silent_at(example: Example, position: int) -> Example:
    """A non-firing context centered on ``position``: a slice with the position in its middle (views
    read non-firing contexts around their middle token)."""
    k = min(position, len(example.tokens) - 1 - position)
    sl = slice(position - k, position + k + 1)
    return example.model_copy(
        update={
            "tokens": example.tokens[sl],
            "token_ids": example.token_ids[sl],
            "acts": [0.0] * (2 * k + 1),
            "max_act": 0.0,
            "max_position": k,
        }
    )


def _centers(n: int, step: int) -> range:
    """Positions with enough context on both sides (``_SPAN`` tokens, or a third of a short example)."""
    k = min(_SPAN, max(1, (n - 1) // 3))
    return range(k, n - k, step)


def _norm(token: str) -> str:
    """Peak-token key, as the offline explainer's (stripped, lowercased; newline tokens keep a newline)."""
    from steerlab.features.explain.offline import normalize_token

    return normalize_token(token)


def held_out_contexts(
    feature: Feature, max_positives: int = 24, max_negatives: int = 24
) -> tuple[list[Example], list[Example], dict]:
    """(firing contexts, non-firing contexts, counts) from the held-out half."""
    held = [e for e in feature.examples if is_held_out(e)]
    firing = [e for e in held if e.kind in ("top", "quantile") and e.max_act > 0]
    positives = [_at(e, e.max_position) for e in firing]
    extra = []  # next-strongest firing tokens of each example: weaker activations
    for e in firing:
        others = [p for p, a in enumerate(e.acts) if a > 0 and p != e.max_position]
        extra += [(e.acts[p], i, _at(e, p)) for i, p in enumerate(sorted(others, key=lambda p: -e.acts[p])[:4])]
    extra.sort(key=lambda t: (t[1], -t[0]))
    positives = (positives + [x for _, _, x in extra])[:max_positives]

    peak_tokens = {_norm(e.tokens[e.max_position]) for e in feature.examples if e.max_act > 0 and not is_held_out(e)}
    near_same, near_other = [], []
    for e in firing:
        fire = [p for p, a in enumerate(e.acts) if a > 0]
        for p in _centers(len(e.tokens), 1):
            if e.acts[p] == 0 and all(abs(p - q) >= 3 for q in fire):
                (near_same if _norm(e.tokens[p]) in peak_tokens else near_other).append(_silent_at(e, p))
    near_other = near_other[:: max(1, len(near_other) // max_negatives)]
    pool = [e for e in held if e.kind in ("nonactivating", "random") and e.max_act <= 0]
    randoms = [_silent_at(e, p) for e in pool for p in _centers(len(e.tokens), 3)]
    n_random = min(len(randoms), max_negatives // 2)
    near = (near_same + near_other)[: max_negatives - n_random]
    negatives = randoms[: max_negatives - len(near)] + near
    counts = {
        "n_pos": len(positives),
        "n_neg": len(negatives),
        "n_near_miss": len(near),
        "n_random": len(negatives) - len(near),
    }
    return positives, negatives, counts


def describe_firing(examples: Sequence[Example]) -> tuple[str, str | None]:
    """(description, the token it names or None) of what the examples fire on: the peak token, a class of words
    (``Gregorian calendar month words ("august", "april")``), and the language or format most of the strongest
    windows are in (what a reader sees: the top examples when there are 4 or more, as ``held_out_language``)."""
    windows = [example_window(e) for e in examples if e.max_act > 0]
    if not windows:
        return f"{UNCLEAR}: no firing contexts", None
    seen = [example_window(e) for e in strongest(examples)]
    peaks = Counter(_norm(w.peak_token) for w in windows)
    token, count = peaks.most_common(1)[0]
    where = None
    for name, matcher in CODE_CONCEPTS.items():
        if name != "source code" and judge(seen, matcher, need=max(1, round(0.6 * len(seen))))[0]:
            where = name
            break
    if where is None:
        langs = Counter(detect_language(w.text) for w in seen)
        code, n = langs.most_common(1)[0]
        if code is not None and code != "en" and n >= 0.6 * len(seen):
            where = f"{NAMES.get(code, code)} text"
    if count >= 0.5 * len(windows):
        named = whole_word_description(seen, token) or token_description(token)
        return named + (f" in {where}" if where and named != "whitespace" else ""), token
    digits = sum(n for t, n in peaks.items() if t.isdigit())
    if digits >= 0.6 * len(windows):  # many different digits: a class of tokens, named as such
        return "digit tokens" + (f" in {where}" if where else ""), "<digits>"
    words = shared_class([_norm(w.peak_token) for w in seen])
    if words is not None:  # different words of one kind: the kind, and the words
        name, members = words
        return class_description(name, members), f"{CLASS_TOKEN}{name}"
    tops = ", ".join(f'"{t[:16]}"' for t, _ in peaks.most_common(3) if t.strip())
    return (where if where else f"{UNCLEAR}: fires on {tops or 'whitespace'}"), None


def whole_word_description(windows: Sequence[Window], token: str, share: float = 0.6) -> str | None:
    """``the word "debian"`` when the token is a piece of one longer word in at least ``share`` of the windows
    (``"bian"`` of ``Debian``, ``"iku"`` of ``haiku``): a reader knows the word, not the piece; else None."""
    words = Counter(w.peak_word for w in windows if _norm(w.peak_token) == token)
    if not words:
        return None
    word, n = words.most_common(1)[0]
    if not word or word == token or len(word) <= len(token) or n < share * len(windows):
        return None
    return f'the word "{word}"'


CLASS_TOKEN = "<class>"
"""Prefix of ``describe_firing``'s token for a class of words (``<class>weekday``)."""


def class_description(name: str, members: Sequence[str]) -> str:
    shown = ", ".join(f'"{m}"' for m in members[:3])
    return f"{name} words ({shown})"


class HeldOutScorer(Scorer):
    """Embedding AUC on held-out contexts, a per-feature null of random concept phrases, and the decision
    whether the label is shown as a concept."""

    def __init__(
        self,
        encode: Encoder | None = None,
        contexts: str = "sentence",
        null_phrases: Sequence[str] | None = None,
        null_size: int = 32,
        null_share: float = 0.9,
        decide: bool = True,
        masked_null_share: float = MASKED_NULL_SHARE,
    ):
        self.encode = encode or EmbeddingCache()
        self.contexts = contexts
        self.name = "heldout-auc" if contexts == "sentence" else f"heldout-auc:{contexts}"
        if null_phrases is None:
            from steerlab.features.explain.concepts import read_phrases

            null_phrases = read_phrases()
        self.null_phrases = list(null_phrases)
        self.null_size, self.null_share, self.decide = null_size, null_share, decide
        self.masked_null_share = masked_null_share

    def choice_view(self, feature: Feature) -> Feature:
        return choice_view(feature)

    def score(self, features: Sequence[Feature], labels: Sequence[Label | None]) -> list[Label | None]:
        plans = [self._plan(f, lab) if lab is not None else None for f, lab in zip(features, labels)]
        texts: list[str] = []  # encode the whole batch at once: the encoder is fast per batch, slow per call
        for plan in plans:
            if plan is not None:
                texts += plan["texts"] + view_texts(plan["positives"] + plan["negatives"], self.contexts)
        if texts:
            self.encode(list(dict.fromkeys(texts)))
        return [
            self._score_one(f, lab, plan) if lab is not None else None for f, lab, plan in zip(features, labels, plans)
        ]

    def _plan(self, feature: Feature, label: Label) -> dict:
        positives, negatives, counts = held_out_contexts(feature)
        description = confirmed_description(feature)
        peak = token_description(top_peak(feature))  # a concept must say more than its strongest token
        unclear = unclear_text(feature)
        texts = [label.text, description or peak, peak, unclear, *self._null(feature, label.text)]
        return {"positives": positives, "negatives": negatives, "counts": counts, "description": description,
                "texts": texts}  # fmt: skip

    def auc_of(self, texts: Sequence[str], positives: Sequence[Example], negatives: Sequence[Example]) -> np.ndarray:
        """Held-out AUC of each text (``[len(texts)]``)."""
        vecs = self.encode(list(texts))
        sim_pos = ContextVectors(positives, self.encode, self.contexts).similarity(vecs)
        sim_neg = ContextVectors(negatives, self.encode, self.contexts).similarity(vecs)
        return auc(sim_pos, sim_neg)

    def rests_on_word(self, feature: Feature, text: str) -> tuple[str | None, dict]:
        """Whether a concept label rests only on the word naming it: ``(None, details)`` when the feature does
        not fire on that word or its windows show the concept without it (masked AUC above the null); else
        ``('the word "email"', details)`` when it peaks on the word, ``("", details)`` when beside it (``past`` in
        ``past years``: what fires is described instead)."""
        forms = label_word_forms(text)
        word = lexical_word(feature, forms) if forms else None
        if word is None:
            return None, {}
        masked, null = self.masked_auc(feature, text, forms)
        details = {
            "masked_auc": round(masked, 4),
            "masked_null_p90": round(null, 4),
            "lexical": masked <= max(null, 0.5),
        }
        if not details["lexical"]:
            return None, details
        return (f'the word "{word}"' if word else ""), details

    def masked_auc(self, feature: Feature, text: str, forms: frozenset[str]) -> tuple[float, float]:
        """(AUC of ``text``, its null's p90) on the held-out firing contexts against the random non-firing ones
        (near misses share the firing contexts' documents, so their topic too), every form of the label's words
        blanked out in both: what the windows say without the word."""
        positives, negatives, counts = held_out_contexts(feature)
        if counts["n_random"] >= 2:  # else (no held-out pool window: 13 of 1,943 concept labels) the near misses
            negatives = negatives[: counts["n_random"]]
        positives, negatives = mask_words(positives, forms), mask_words(negatives, forms)
        values = self.auc_of([text, *self._null(feature, text)], positives, negatives)
        null = float(np.quantile(values[1:], self.masked_null_share)) if len(values) > 1 else 0.5
        return float(values[0]), null

    def _null(self, feature: Feature, exclude: str) -> list[str]:
        rng = random.Random(f"null/{feature.sae_id}/{feature.index}")
        pool = [p for p in self.null_phrases if p != exclude]
        return rng.sample(pool, min(self.null_size, len(pool)))

    def _score_one(self, feature: Feature, label: Label, plan: dict) -> Label:
        positives, negatives, counts = plan["positives"], plan["negatives"], plan["counts"]
        description = plan["description"]
        if len(positives) < 2 or len(negatives) < 2:
            return scored(label, None, self.name, {"reason": "too few held-out contexts", **counts})
        values = self.auc_of(plan["texts"], positives, negatives)
        value, desc_value, peak_value, unclear_value = (float(v) for v in values[:4])
        threshold = float(np.quantile(values[4:], self.null_share)) if len(values) > 4 else 0.5
        details = {"auc": round(value, 4), "null_p90": round(threshold, 4), "peak_auc": round(peak_value, 4), **counts}
        if description is not None:
            details["description"], details["description_auc"] = description, round(desc_value, 4)
        if not self.decide:
            return scored(label, value, self.name, details)
        beats = value > max(threshold, 0.5, peak_value, desc_value if description else 0.0)
        code = held_out_code(feature, label.text)
        if code is not None:  # code and markup: the patterns decide (the encoder tells C from shell no better)
            details["code_holds"] = code
            beats = beats and code
        word = None
        if not is_description(label.text) and claimed_language(label.text) is None and beats:
            word, extra = self.rests_on_word(feature, label.text)
            details = {**details, **extra}
            if word is None:
                return scored(label, value, self.name, {**details, "decision": "concept"})
            if word:  # it fires on the word that names the label: say so ('the word "email"')
                new_value = float(self.auc_of([word], positives, negatives)[0])
                replaced = {"concept_label": label.text, "concept_auc": round(value, 4), "auc": round(new_value, 4)}
                out = label.model_copy(update={"text": word})
                return scored(out, new_value, self.name, {**details, **replaced, "decision": "fires-on"})
        if held_out_language(feature, label.text):  # languages: the identifier decides (the encoder cannot tell)
            return scored(label, value, self.name, {**details, "decision": "fires-on"})
        family = (
            word_family(feature, label.text)
            if value > max(threshold, 0.5) and description is None and word is None
            else None
        )
        language_only = token_language_fallback(feature, label.text)
        if family is not None:  # a concept that is its own peak words ("money": "money", "financial", "pay")
            text, new_value, decision = family, value, "fires-on"
        elif language_only is not None:  # '"д" tokens in Russian text': the token did not hold, the language did
            text, new_value, decision = language_only, value, "fires-on"
        elif description is not None:
            text, new_value, decision = description, desc_value, "fires-on"
        else:
            text, new_value, decision = plan["texts"][3], unclear_value, UNCLEAR
        if text == label.text:
            return scored(label, value, self.name, {**details, "decision": decision})
        replaced = {"concept_label": label.text, "concept_auc": round(value, 4), "auc": round(new_value, 4)}
        out = label.model_copy(update={"text": text})
        return scored(out, new_value, self.name, {**details, **replaced, "decision": decision})


LEXICAL_SHARE = 0.6
"""A concept label rests on its own word when at least this share of the feature's strongest contexts peak on a
form of one of the label's words, or right beside one (``past years``): 6 of 10, as the strict check reads."""


def label_word_forms(text: str) -> frozenset[str]:
    """Every form of the label's words (``numbers`` -> ``numbers``, ``number``, ...); empty for descriptions,
    languages, ``unclear`` and labels that are not a few plain words (``C++ code``)."""
    if is_description(text) or claimed_language(text) is not None or not claims_concept(text):
        return frozenset()
    words = text.lower().split()
    if not words or len(words) > 3 or not all(w.isalpha() for w in words):
        return frozenset()
    return frozenset(form for w in words for form in word_forms(w))


def lexical_word(feature: Feature, forms: frozenset[str], share: float = LEXICAL_SHARE) -> str | None:
    """Whether the feature fires on the word naming its label: the commonest form it peaks on (``"email"``) when
    at least ``share`` of its top examples (both halves: the strongest contexts a reader sees) peak on a form of
    the label's words; ``""`` when they peak right beside one (the token before or after it); else None."""
    tops = [e for e in feature.examples if e.kind == "top" and e.max_act > 0]
    if not tops or not forms:
        return None
    on: Counter[str] = Counter()
    beside = 0
    for e in tops:
        p = min(e.max_position, len(e.tokens) - 1)
        token = _norm(e.tokens[p])
        if spells(token, forms):
            on[token] += 1
        elif any(spells(_norm(e.tokens[q]), forms) for q in (p - 1, p + 1) if 0 <= q < len(e.tokens)):
            beside += 1
    if sum(on.values()) >= share * len(tops):
        return on.most_common(1)[0][0]
    return "" if sum(on.values()) + beside >= share * len(tops) else None


def mask_words(examples: Sequence[Example], forms: frozenset[str]) -> list[Example]:
    """The examples with every token that is a form of ``forms`` blanked (positions kept)."""
    out = []
    for e in examples:
        hide = [i for i, t in enumerate(e.tokens) if spells(_norm(t), forms)]
        if hide:
            tokens = list(e.tokens)
            for i in hide:
                tokens[i] = ""
            e = e.model_copy(update={"tokens": tokens})
        out.append(e)
    return out


def _firing(feature: Feature, held_out: bool) -> list[Example]:
    return [
        e for e in feature.examples if e.kind in ("top", "quantile") and e.max_act > 0 and is_held_out(e) == held_out
    ]


def confirmed_description(feature: Feature) -> str | None:
    """What fires, described from the choice half and confirmed on the held-out half; None if they disagree."""
    chosen, chosen_token = describe_firing(_firing(feature, False))
    held, held_token = describe_firing(_firing(feature, True))
    if chosen_token is not None and chosen_token.startswith(CLASS_TOKEN):
        return chosen if class_holds(_firing(feature, True), chosen_token.removeprefix(CLASS_TOKEN)) else None
    if chosen_token is not None and chosen_token == held_token:
        if chosen_token == "<digits>":
            return chosen if chosen == held else "digit tokens"
        return chosen if chosen == held else token_description(chosen_token)
    if chosen_token is None and held_token is None and chosen == held and not chosen.startswith(UNCLEAR):
        return chosen
    return None


def class_holds(examples: Sequence[Example], name: str, share: float = 0.5) -> bool:
    """Whether at least ``share`` of the strongest windows (the top examples when there are 4 or more) peak on a
    word of the class ``name``: the held-out half confirming a class the choice half found."""
    seen = strongest(examples)
    hits = sum(in_class(_norm(example_window(e).peak_token), name) for e in seen)
    return bool(seen) and hits >= share * len(seen)


def token_description(token: str) -> str:
    """The offline explainer's name for a token: ``commas``, ``line breaks``, or ``"cat" tokens``."""
    from steerlab.features.explain.offline import token_phrase

    return token_phrase(token)


def top_peak(feature: Feature) -> str:
    """The most common strongest token over all firing examples (both halves)."""
    peaks = Counter(_norm(e.tokens[e.max_position]) for e in _firing(feature, False) + _firing(feature, True))
    return peaks.most_common(1)[0][0] if peaks else ""


def unclear_text(feature: Feature) -> str:
    peaks = Counter(_norm(e.tokens[e.max_position]) for e in _firing(feature, False) + _firing(feature, True))
    tops = ", ".join(f'"{t[:16]}"' for t, _ in peaks.most_common(4) if t.strip())
    return f"{UNCLEAR}: fires on {tops or 'whitespace'}"


def strongest(examples: Sequence[Example]) -> list[Example]:
    """The firing examples a reader (and the strict check) sees: the top examples, or every firing example when
    fewer than 4 are top examples (the weaker quantile examples come from anywhere)."""
    firing = [e for e in examples if e.max_act > 0]
    tops = [e for e in firing if e.kind == "top"]
    return tops if len(tops) >= 4 else firing


def _held_out_tops(feature: Feature) -> list[Window]:
    """Windows of the held-out half's strongest contexts."""
    return [example_window(e) for e in strongest(_firing(feature, True))]


def held_out_code(feature: Feature, text: str, share: float = 0.6) -> bool | None:
    """Whether the code or markup a label names (``C code``, ``shell commands``, ``HTML tags``) shows in at least
    ``share`` of the held-out strongest windows, by the same patterns the descriptions' ``in C code`` is read with;
    None when the label names no such format. #3724, which fires on the Unix ``cat`` command, was shown as
    ``C code`` on embedding AUC alone."""
    matcher = next((m for name, m in CODE_CONCEPTS.items() if name.lower() == text.strip().lower()), None)
    if matcher is None:
        return None
    windows = _held_out_tops(feature)
    return bool(windows) and judge(windows, matcher, need=max(1, round(share * len(windows))))[0]


def held_out_language(feature: Feature, text: str, share: float = 0.6) -> bool:
    """Whether ``text`` names a language (``French text``) that the identifier finds in at least ``share``
    of the held-out top windows (all held-out firing windows when fewer than 4 are top examples)."""
    name = claimed_language(text)
    if name is None:
        return False
    windows = _held_out_tops(feature)
    return bool(windows) and judge(windows, language(CODES[name]), need=max(1, round(share * len(windows))))[0]


def word_family(feature: Feature, text: str, need: int = 2) -> str | None:
    """``words about money ("money", "financial", "pay")`` when a one-word concept label is itself a peak word of
    at least ``need`` held-out firing examples (lemmatized: ``cats`` is ``cat``); else None. Such a label beat
    its null but not its own peak token, and no description of what fires held: the feature is about the word and
    its neighbours, and says so. Never for code-like windows."""
    word = text.strip().lower()
    if not word.isalpha() or is_description(text) or claimed_language(text) is not None:
        return None

    def lemma(token: str) -> str:
        return (lemmatize(token) or token) if token.isalpha() else token

    firing = _firing(feature, True)
    held = Counter(lemma(_norm(e.tokens[e.max_position])) for e in firing)
    if held[lemma(word)] < need:
        return None
    if sum(looks_like_code(example_window(e).text) for e in firing) >= 0.5 * len(firing):
        return None  # `cat /etc/passwd` is not about cats
    peaks = Counter(_norm(e.tokens[e.max_position]) for e in _firing(feature, False) + _firing(feature, True))
    tops = ", ".join(f'"{t[:16]}"' for t, _ in peaks.most_common(3) if t.strip())
    return f"words about {word} ({tops})"


def token_language_fallback(feature: Feature, text: str) -> str | None:
    """``Russian text`` for a ``"д" tokens in Russian text`` label whose language the held-out windows confirm."""
    head, sep, tail = text.rpartition(" in ")
    if not sep or not is_description(head) or claimed_language(tail) is None:
        return None
    return tail if held_out_language(feature, tail) else None


def claims_concept(text: str) -> bool:
    """Whether a label asserts something (an ``unclear: ...`` label asserts nothing)."""
    return not text.startswith(UNCLEAR)
