"""Where AutoSteer's candidate features come from: four independent sources, merged fairly.

* ``search``: the feature database's label search on the goal text (only when one is available).
* ``mention``: features that fire on the goal's own words ("pirate"), from a templated contrast of
  user messages that mention them against the same templates about neutral topics.
* ``contrast``: ``analysis.contrast`` between the two datasets of the contrastive stimulus; the
  features most characteristic of the goal-following side.
* ``gradient``: the first-order effect of nudging each feature on how likely the goal-following
  text becomes. One backward pass gives ``dJ/d(delta)`` for a constant shift ``delta`` of the
  residual at the SAE's hookpoint, where J = mean log-likelihood of the goal-following replies
  minus that of the neutral replies (both read under the *plain* prompt, no instruction) plus the
  mean log-probability, at every reply position, of the goal's own words. Nudging feature j by one
  *steering* unit shifts the residual by ``steering_unit(sae)[j] * W_dec[j]`` (``sae.units``: with the
  calibrated unit the same distance for every feature, so the ranking is by how well the decoder
  direction points up the gradient; in quantile units ``feature_scale[j]``, which favoured features
  that fire strongly rather than ones that push the right way), so its score is that dotted with the
  gradient: the gain per unit of what a user would set. This finds features that *cause* the
  behaviour even when none fires on the stimulus.

Sources are merged round-robin (best of each, then second of each, ...) so no source crowds out
the others before generation-based scoring decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from steerlab.analysis.codes import labeler
from steerlab.analysis.contrast import contrast
from steerlab.analysis.stimulus import ContrastiveStimulus, neutral_conversations, topic_conversations
from steerlab.models.hooks import output_hidden, register_own_thread_hook, replace_output_hidden
from steerlab.sae.units import steering_unit
from steerlab.steering.conversation import prompt_ids

_FILLER = {
    "a",
    "an",
    "the",
    "of",
    "to",
    "in",
    "on",
    "at",
    "for",
    "and",
    "or",
    "be",
    "is",
    "are",
    "more",
    "less",
    "very",
    "like",
    "as",
    "with",
    "about",
    "your",
    "you",
    "my",
    "me",
    "it",
    "its",
    "talk",
    "speak",
    "write",
    "sound",
    "act",
    "use",
    "reply",
    "respond",
    "answer",
    "always",
    "every",
    "each",
    "when",
    "do",
    "make",
    "mention",
    "say",
    "pretend",
    "someone",
    "somebody",
    "style",
    "tone",
    "way",
    "lot",
    "much",
    "often",
}


@dataclass
class Candidate:
    index: int
    label: str = ""
    evidence: dict[str, float] = field(default_factory=dict)
    """Per source that proposed it: its score there (search relevance, contrast effect, gradient)."""


def goal_words(goal: str) -> list[str]:
    """The goal's content words ("talk like a pirate" -> ["pirate"])."""
    words = [w for w in re.findall(r"[A-Za-z\u00C0-\u024F']+", goal) if w.lower() not in _FILLER and len(w) > 1]
    return list(dict.fromkeys(words))


def word_token_ids(tokenizer, words: list[str]) -> list[int]:
    """First token of each word as it would start a sentence or follow a space, any capitalisation;
    skipped when that token is only a space or a single letter of a longer word (it would stand for
    every word, not this one)."""
    ids = []
    for w in words:
        for form in (w, f" {w}", w.capitalize(), f" {w.capitalize()}", w.lower(), f" {w.lower()}"):
            encoded = tokenizer.encode(form, add_special_tokens=False)
            piece = tokenizer.decode(encoded[:1]).strip() if encoded else ""
            if len(piece) >= min(2, len(w)) and form.strip().lower().startswith(piece.lower()):
                ids.append(encoded[0])
    return list(dict.fromkeys(ids))


def search_candidates(search, sae, goal: str, k: int) -> list[tuple[int, float]]:
    """Label search on the goal (``search`` is a ``FeatureSearch`` or anything with ``search(q, top_k, by=...)``).
    Labels, not the default search's contexts: a feature whose strongest windows are *about* the goal is a good
    detector and a poor steering direction. On the steering evaluation's development split (docs/steering.md),
    mean combined 0.141 with label search, 0.058 with label + contexts (hybrid), 0.122 with no search source."""
    if search is None or k < 1:
        return []
    ok = steerable(sae)
    hits = search.search(goal, top_k=4 * k, by="label")
    return [(int(h.index), float(h.score)) for h in hits if ok[int(h.index)]][:k]


def contrast_candidates(lm, sae, stimulus: ContrastiveStimulus, k: int) -> list[tuple[int, float]]:
    result = contrast(
        lm, sae, stimulus.dataset_1, stimulus.dataset_2, k_to_add=4 * k, k_to_remove=0, include_template=True
    )  # AutoSteer's candidates as measured: every token (issue 18's masking is for what people inspect)
    ok = steerable(sae)
    return [(f.index, f.effect) for f in result.dataset_1_features if ok[f.index]][:k]


def mention_candidates(lm, sae, goal: str, k: int) -> list[tuple[int, float]]:
    """Features that read the goal's own words: templated user messages mentioning them against the
    same templates about neutral topics. Such "reading" features often write the concept too when
    pushed hard enough (their decoder direction is what later layers learned to read)."""
    words = goal_words(goal)
    if not words or k < 1:
        return []
    result = contrast(
        lm,
        sae,
        topic_conversations(" ".join(words)),
        neutral_conversations(),
        k_to_add=4 * k,
        k_to_remove=0,
        include_template=True,
    )
    ok = steerable(sae)
    return [(f.index, f.effect) for f in result.dataset_1_features if ok[f.index]][:k]


def nudge_gradient(lm, sae, stimulus: ContrastiveStimulus, goal: str) -> torch.Tensor:
    """``[d_sae]``: first-order change of J (module doc) per steering unit of nudge on each feature."""
    tokenizer, model = lm.tokenizer, lm.model
    plain = [prompt_ids(tokenizer, [{"role": "user", "content": p}]) for p in stimulus.prompts]
    seqs, signs, starts = [], [], []
    for sign, replies in ((1.0, stimulus.replies_1), (-1.0, stimulus.replies_2)):
        for p, r in zip(plain, replies):
            seqs.append(p + r.token_ids)
            signs.append(sign)
            starts.append(len(p))
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, s in enumerate(seqs):
        ids[row, : len(s)], mask[row, : len(s)] = torch.tensor(s), 1
    reply = torch.zeros(len(seqs), width - 1, dtype=torch.bool)  # position t predicts token t + 1
    for row, (start, s) in enumerate(zip(starts, seqs)):
        reply[row, start - 1 : len(s) - 1] = True
    delta = torch.zeros(model.config.hidden_size, dtype=lm.dtype, device=lm.device, requires_grad=True)

    def hook(_module, _inputs, output):
        return replace_output_hidden(output, output_hidden(output) + delta)

    handle = register_own_thread_hook(model.get_submodule(sae.cfg.hookpoint), hook)
    try:
        with torch.enable_grad():
            logits = model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device)).logits[:, :-1].float()
            logp = torch.log_softmax(logits, -1)
            picked = reply.to(logp.device)
            token_logp = logp.gather(-1, ids[:, 1:, None].to(logp.device))[..., 0] * picked
            per_row = token_logp.sum(-1) / picked.sum(-1).clamp_min(1)
            sign = torch.tensor(signs, device=logp.device)
            objective = (per_row * sign).sum() / (sign > 0).sum()
            words = word_token_ids(tokenizer, goal_words(goal))
            if words:
                goal_logp = logp[..., words].logsumexp(-1)
                objective = objective + (goal_logp * picked).sum() / picked.sum().clamp_min(1)
            objective.backward()
    finally:
        handle.remove()
    grad = delta.grad.detach().to(sae.W_dec.dtype)
    unit = steering_unit(sae).to(device=sae.W_dec.device, dtype=sae.W_dec.dtype)
    return (sae.W_dec.detach() @ grad) * unit


def steerable(sae, max_scale_ratio: float = 10.0) -> torch.Tensor:
    """``[d_sae]`` bool: features worth nudging. Latents whose typical activation is far above the
    median (the attention-sink / first-token latents, ~200x here) move the residual so far per unit
    that any nudge wrecks the model; they are never candidates."""
    scale = sae.feature_scale.detach().float().cpu()
    return scale <= max_scale_ratio * scale.median()


def gradient_candidates(lm, sae, stimulus: ContrastiveStimulus, goal: str, k: int) -> list[tuple[int, float]]:
    scores = nudge_gradient(lm, sae, stimulus, goal).float().cpu()
    scores[~steerable(sae)] = float("-inf")
    top = scores.topk(min(k, len(scores)))
    return [(i, v) for i, v in zip(top.indices.tolist(), top.values.tolist()) if v > 0]


def merge_candidates(sources: dict[str, list[tuple[int, float]]], limit: int, labels=None) -> list[Candidate]:
    """Round-robin over sources, deduplicated, at most ``limit``; each keeps every source's score."""
    label = labeler(labels)
    found: dict[int, Candidate] = {}
    for name, ranked in sources.items():
        for index, score in ranked:
            found.setdefault(index, Candidate(index, label(index))).evidence[name] = score
    order: list[int] = []
    depth = max((len(r) for r in sources.values()), default=0)
    for rank in range(depth):
        for ranked in sources.values():
            if rank < len(ranked) and ranked[rank][0] not in order:
                order.append(ranked[rank][0])
    return [found[i] for i in order[:limit]]
