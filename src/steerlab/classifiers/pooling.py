"""Per-text features through the Lab: SAE codes and the residual at the SAE's hookpoint, pooled.

A text is read as a user turn in the model's chat format (what a guard sees), and pooled over the
text's own tokens only: the chat template's prefix is the same for every text, so it would add a
constant. Texts longer than ``max_tokens`` tokens are cut to their first ``max_tokens`` (reported as
``truncated``); ``max_tokens`` never exceeds the model's context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from steerlab.classifiers.data import check_finite
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering.conversation import conversation_ids

POOLS = ("max", "mean")


@dataclass
class Tokenized:
    ids: list[int]
    start: int
    """First position of the text's own tokens."""
    truncated: bool


@dataclass
class Pooled:
    """Pooled features of n texts: ``sae[pool]``: [n, d_sae], ``raw[pool]``: [n, d_model] (float32)."""

    sae: dict[str, np.ndarray] = field(default_factory=dict)
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    n_tokens: list[int] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)


@dataclass
class TokenCodes:
    """One text's per-token view, for explanations: its tokens, SAE codes [T, d_sae], residual [T, d_model]."""

    tokens: list[str]
    codes: torch.Tensor
    resid: torch.Tensor
    truncated: bool


def content_start(tokenizer: Any) -> int:
    """Where a user turn's text begins in the chat template (the longest prefix two texts share)."""
    a = conversation_ids(tokenizer, [{"role": "user", "content": "a"}])
    b = conversation_ids(tokenizer, [{"role": "user", "content": "b"}])
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def context_limit(model: Any) -> int | None:
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def tokenize(lab: Any, texts: list[str], max_tokens: int) -> list[Tokenized]:
    tokenizer = lab.lm.tokenizer
    start = content_start(tokenizer)
    limit = context_limit(lab.lm.model)
    keep = min(max_tokens, limit - start) if limit else max_tokens
    out = []
    for text in texts:
        ids = conversation_ids(tokenizer, [{"role": "user", "content": text}], field="text")
        truncated = len(ids) - start > keep
        out.append(Tokenized(ids[: start + keep], start, truncated))
    return out


@torch.inference_mode()
def _batch_hidden(lab: Any, batch: list[Tokenized]) -> list[torch.Tensor]:
    """Residual at the hookpoint of each text's own tokens: [T_i, d_model] float32."""
    lm = lab.lm
    width = max(len(t.ids) for t in batch)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, t in enumerate(batch):
        ids[i, : len(t.ids)] = torch.tensor(t.ids)
        mask[i, : len(t.ids)] = 1
    hidden = forward_to_hookpoint(lm.model, ids.to(lm.device), lab.sae.cfg.hookpoint, mask.to(lm.device))
    return [hidden[i, t.start : len(t.ids)].float().cpu() for i, t in enumerate(batch)]


def batches(toks: list[Tokenized], batch_size: int = 16, batch_tokens: int | None = None) -> list[list[int]]:
    """Rows of ``toks`` in length order (little padding), cut into batches of at most ``batch_size`` texts
    and, with ``batch_tokens``, at most that many padded tokens per forward (a longer text goes alone: one
    text's forward is not split)."""
    order = sorted(range(len(toks)), key=lambda i: len(toks[i].ids))
    out: list[list[int]] = []
    for i in order:
        width = len(toks[i].ids)  # sorted: the new text is the batch's widest
        if out and len(out[-1]) < batch_size and (batch_tokens is None or (len(out[-1]) + 1) * width <= batch_tokens):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def token_count(lab: Any, texts: list[str], max_tokens: int) -> int:
    """Tokens the model runs to read ``texts`` (chat template included, each cut to ``max_tokens``)."""
    return sum(len(t.ids) for t in tokenize(lab, texts, max_tokens))


def pooled_features(
    lab: Any,
    texts: list[str],
    max_tokens: int,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    batch_tokens: int | None = None,
    admit: Callable[[int], None] | None = None,
) -> Pooled:
    """Max- and mean-pooled SAE codes and residuals of every text (in the order given).

    Batches go in length order (little padding; see ``batches``); each batch holds the model through
    ``lab.run_exclusive``, so a server keeps serving between them. ``admit(n_tokens)`` runs before each
    batch (a server charges the tokens there, and may wait or stop); ``progress(done, total)`` after it.
    """
    toks = tokenize(lab, texts, max_tokens)
    d_sae, d_in = lab.sae.cfg.d_sae, lab.sae.cfg.d_in
    out = Pooled(
        sae={p: np.zeros((len(texts), d_sae), np.float32) for p in POOLS},
        raw={p: np.zeros((len(texts), d_in), np.float32) for p in POOLS},
        n_tokens=[0] * len(texts),
        truncated=[t.truncated for t in toks],
    )
    sae = lab.sae
    done = 0
    for rows in batches(toks, batch_size, batch_tokens):
        if admit is not None:
            admit(sum(len(toks[i].ids) for i in rows))
        hiddens = lab.run_exclusive(_batch_hidden, lab, [toks[i] for i in rows])
        with torch.inference_mode():
            for i, h in zip(rows, hiddens):
                codes = sae.encode(h.to(sae.W_enc.device)).float().cpu()
                out.sae["max"][i] = codes.max(0).values.numpy()
                out.sae["mean"][i] = codes.mean(0).numpy()
                out.raw["max"][i] = h.max(0).values.numpy()
                out.raw["mean"][i] = h.mean(0).numpy()
                out.n_tokens[i] = h.shape[0]
        done += len(rows)
        if progress is not None:
            progress(done, len(toks))
    check_finite(out.raw["mean"], "residual activations")
    check_finite(out.sae["max"], "SAE codes")
    return out


def token_codes(lab: Any, text: str, max_tokens: int) -> TokenCodes:
    """Per-token SAE codes and residual of one text (its own tokens), for heatmaps."""
    tok = tokenize(lab, [text], max_tokens)[0]
    h = lab.run_exclusive(_batch_hidden, lab, [tok])[0]
    with torch.inference_mode():
        codes = lab.sae.encode(h.to(lab.sae.W_enc.device)).float().cpu()
    tokenizer = lab.lm.tokenizer
    tokens = [tokenizer.decode([i]) for i in tok.ids[tok.start :]]
    return TokenCodes(tokens, codes, h, tok.truncated)
