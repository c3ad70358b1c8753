"""Scoring steered replies: concept presence, instruction relevance and fluency, each in [0, 1].

Used both to choose AutoSteer strengths and to evaluate steering, so AutoSteer optimises exactly
what the evaluation reports. Every part is measured against the *unsteered* replies to the same
prompts, generated in the same run:

* **concept**: cosine similarity (all-MiniLM-L6-v2) of the reply to the concept text, minus the
  mean similarity of the unsteered replies and a ``concept_margin`` (0.1: unrelated replies scatter
  about that much around their mean, so smaller gains are noise), divided by ``concept_gain_full``
  (0.3: a clearly on-concept reply sits ~0.3-0.45 above unrelated ones) and clipped to [0, 1].
  With a lexical checker (text -> [0, 1]) the larger of the two counts: the word list catches what
  the English-only embedder misses (French), the embedder catches paraphrase.
* **relevance**: the reply's cosine similarity to the prompt as a fraction of the unsteered reply's
  to the same prompt (clipped to [0, 1]): how much of the answer's topicality survived.
* **fluency**: perplexity of the reply under the unsteered model (given the plain prompt), 1 up to
  the unsteered replies' median perplexity and falling linearly in log-perplexity to 0 at
  ``max_ppl_ratio`` (10x) that (measured on the default model: its own pirate talk when asked for
  it reads 1.2-3x, word salad from over-steering 7-37x); times ``1 - repeated_trigram_fraction``, because a model that
  loops ("arr arr arr") finds its own loop very likely. An empty reply has fluency 0.
* **combined**: their harmonic mean (AxBench's aggregate), 0 if any part is 0.

Languages are judged by a language identifier (``features.explain.language``), not the embedder,
which puts any non-English reply near "speak French" (a Spanish reply scored 0.25 concept for it,
and AutoSteer picked a Spanish feature): when the concept asks for a language ("speak French",
"text written in German"), **concept** is 1 for a reply identified as that language and 0 otherwise
(or the lexical checker's score, if larger); and a reply in a language that is neither the asked-for
one nor the unsteered replies' has **relevance** 0 — it does not answer the user.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from steerlab.analysis.autosteer_generate import Reply
from steerlab.features.explain.language import detect_language, requested_language
from steerlab.steering.conversation import prompt_ids

PARTS = ("concept", "relevance", "fluency")


def harmonic_mean(values: Sequence[float]) -> float:
    """AxBench's aggregate: the harmonic mean, which is 0 as soon as any part is 0 (or below)."""
    values = list(values)
    if not values or any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1.0 / v for v in values)


def repeated_trigram_fraction(token_ids: Sequence[int]) -> float:
    """Share of the reply's token trigrams that already occurred earlier in it (0 = no loop)."""
    grams = [tuple(token_ids[i : i + 3]) for i in range(len(token_ids) - 2)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def word_list_checker(words: Sequence[str], density_full: float = 0.1) -> Callable[[str], float]:
    """A lexical concept checker: the share of the reply's words found in ``words``, divided by
    ``density_full`` (the share that counts as fully present) and capped at 1."""
    vocabulary = {w.lower() for w in words}

    def check(text: str) -> float:
        tokens = [t.strip(".,!?;:'\"()").lower() for t in text.split()]
        tokens = [t for t in tokens if t]
        if not tokens:
            return 0.0
        hits = sum(t in vocabulary for t in tokens)
        return min(1.0, hits / len(tokens) / density_full)

    return check


@torch.inference_mode()
def reply_perplexities(lm, prompts: list[list[int]], replies: list[list[int]], batch_rows: int = 16) -> list[float]:
    """Perplexity of each reply given its prompt under ``lm`` as is (no steering); inf when empty."""
    out: list[float] = []
    pad = lm.tokenizer.pad_token_id or 0
    for start in range(0, len(prompts), batch_rows):
        seqs = [p + r for p, r in zip(prompts[start : start + batch_rows], replies[start : start + batch_rows])]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        target = torch.zeros((len(seqs), width), dtype=torch.bool)  # reply tokens (right padding)
        for row, (p, s) in enumerate(zip(prompts[start:], seqs)):
            ids[row, : len(s)] = torch.tensor(s)
            mask[row, : len(s)] = 1
            target[row, len(p) : len(s)] = True
        logits = lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits[:, :-1].float().cpu()
        logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
        picked = target[:, 1:]
        nll = -(logp * picked).sum(-1)
        count = picked.sum(-1)
        out += [math.exp(float(n / c)) if c else math.inf for n, c in zip(nll, count)]
    return out


@dataclass
class ReplyScore:
    concept: float
    relevance: float
    fluency: float
    concept_similarity: float
    """Raw cosine of the reply with the concept text (diagnostics, tie-breaks)."""
    perplexity: float
    lexical: float | None = None

    def combined(self, parts: Sequence[str] = PARTS) -> float:
        return harmonic_mean([getattr(self, p) for p in parts])


class ReplyScorer:
    """Scores replies to a fixed prompt set for one concept, against the unsteered replies."""

    def __init__(
        self,
        lm,
        concept: str,
        prompts: list[list[dict]],
        unsteered: list[Reply],
        *,
        lexical: Callable[[str], float] | None = None,
        embed=None,
        concept_gain_full: float = 0.3,
        concept_margin: float = 0.1,
        max_ppl_ratio: float = 10.0,
    ):
        if embed is None:
            from steerlab.features.embeddings import embed
        self.lm, self.embed, self.lexical = lm, embed, lexical
        self.target_language = requested_language(concept)
        spoken = [code for code in (detect_language(r.text) for r in unsteered) if code is not None]
        self.base_language = max(set(spoken), key=spoken.count) if spoken else None
        self.concept_gain_full, self.concept_margin = concept_gain_full, concept_margin
        self.max_ppl_ratio = max_ppl_ratio
        self.prompt_ids = [prompt_ids(lm.tokenizer, m) for m in prompts]
        last_user = [next((m["content"] for m in reversed(p) if m["role"] == "user"), "") for p in prompts]
        vectors = self.embed([concept, *last_user, *[r.text for r in unsteered]])
        self.concept_vec = vectors[0]
        self.prompt_vecs = vectors[1 : 1 + len(prompts)]
        base = vectors[1 + len(prompts) :]
        self.base_concept = float(np.mean(base @ self.concept_vec))
        self.base_relevance = np.maximum((base * self.prompt_vecs).sum(-1), 0.05)
        ppl = reply_perplexities(lm, self.prompt_ids, [r.token_ids for r in unsteered])
        finite = [p for p in ppl if math.isfinite(p)]
        self.base_ppl = float(np.median(finite)) if finite else 1.0

    def score(self, prompt_index: list[int], replies: list[Reply]) -> list[ReplyScore]:
        """Scores of ``replies[i]``, a reply to prompt ``prompt_index[i]`` (however it was produced)."""
        vectors = self.embed([r.text for r in replies])
        ppl = reply_perplexities(self.lm, [self.prompt_ids[i] for i in prompt_index], [r.token_ids for r in replies])
        scores = []
        for i, reply, vec, p in zip(prompt_index, replies, vectors, ppl):
            similarity = float(vec @ self.concept_vec)
            language = detect_language(reply.text)
            if self.target_language is not None:
                concept = float(language == self.target_language)
            else:
                concept = _clip((similarity - self.base_concept - self.concept_margin) / self.concept_gain_full)
            lexical = self.lexical(reply.text) if self.lexical is not None else None
            if lexical is not None:
                concept = max(concept, _clip(lexical))
            relevance = _clip(float(vec @ self.prompt_vecs[i]) / float(self.base_relevance[i]))
            if language is not None and language not in (self.target_language, self.base_language):
                relevance = 0.0  # drifted into a language nobody asked for
            scores.append(ReplyScore(concept, relevance, self.fluency(p, reply.token_ids), similarity, p, lexical))
        return scores

    def fluency(self, perplexity: float, token_ids: list[int]) -> float:
        if not token_ids or not math.isfinite(perplexity):
            return 0.0
        excess = max(0.0, math.log(perplexity / self.base_ppl))
        return _clip(1.0 - excess / math.log(self.max_ppl_ratio)) * (1.0 - repeated_trigram_fraction(token_ids))


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))
