"""Linear probes as steering conditions: a classifier's score, computed as the tokens arrive.

A ``LinearProbe`` is what a controller's ``{"classifier": NAME, ...}`` condition becomes once the Lab
has resolved the name (steering does not know classifiers; ``engine.lab`` builds these from them):
``score = sigmoid(weights . pool(x) + bias)``, where ``x`` is, per token, the SAE's codes at the
hookpoint (raw units, the columns ``indices``) or the residual itself, and ``pool`` is the max or the
mean over the tokens so far, the first ``skip`` tokens of the sequence left out (the chat template's
fixed prefix, which the classifier never saw in training). There is no score (NaN: no condition on it
holds) until ``min_tokens`` tokens are pooled: a classifier trained on whole texts reads the mean of
its first few tokens as noise, and a sticky scope would stay on after one noisy token.

When the prompt is known (``PromptSpan``, set by the Lab for a chat), a guard reads what the classifier
was trained on: the pool takes the latest user turn's tokens, its first ``max_tokens`` as the classifier
does (or, with ``STEERLAB_GUARD_READS=conversation``, every turn), the first score is at the prompt's last
token (the complete turn, before the first reply token), and from then on the reply's tokens join the
pool, one score per token (the turn plus the reply so far, never a short prefix of the turn). Without a
span (a bare token sequence) the score is the running one above, from the ``min_tokens``-th pooled token.

Each sequence keeps its own running pool (``ProbePool``: a count and a sum, or a running max), so a
decode step costs one ``[k]`` update per probe per row whatever the length, and rows of a batch never
share a pool. Scores are read before this controller's edits at that token, like feature conditions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

READS = ("sae", "residual")
POOLS = ("max", "mean")


@dataclass(frozen=True, eq=False)
class LinearProbe:
    name: str
    reads: str
    """``sae``: the SAE's codes (raw units); ``residual``: the hidden state at the hookpoint."""
    weights: torch.Tensor
    """``[k]`` float32."""
    bias: float
    pool: str
    indices: torch.Tensor | None = None
    """``[k]`` columns of the codes (``sae``); None: every column."""
    skip: int = 0
    """Leading tokens of a sequence that are not pooled."""
    min_tokens: int = 1
    """Tokens pooled before the first score."""
    max_tokens: int | None = None
    """With a ``PromptSpan``: the turn's first this many tokens are pooled (the classifier's own cut, so the
    score at the prompt's end is the classifier's score of the turn); None: all of them."""

    def __post_init__(self) -> None:
        if self.reads not in READS:
            raise ValueError(f"reads: must be one of {READS}, got {self.reads!r}")
        if self.pool not in POOLS:
            raise ValueError(f"pool: must be one of {POOLS}, got {self.pool!r}")
        if self.indices is not None and len(self.indices) != len(self.weights):
            raise ValueError("indices and weights differ in length")
        if not math.isfinite(self.bias) or not bool(torch.isfinite(self.weights).all()):
            raise ValueError(f"probe {self.name!r} has non-finite weights")

    def inputs(self, hidden: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``[T, k]`` float32 from one row's ``hidden [T, d_model]`` and ``codes [T, d_sae]``."""
        if self.reads == "residual":
            return hidden.float()
        x = codes if self.indices is None else codes[:, self.indices.to(codes.device)]
        return x.float()


@dataclass(frozen=True)
class PromptSpan:
    """Where a guard reads one sequence's prompt: tokens ``[start, end)`` are pooled (the latest user
    turn's text and its end-of-turn tokens, as a classifier reads a text), the rest of the prompt is not
    (earlier turns, the assistant's header), and every token from ``length`` on (the reply) is. The first
    score is at position ``length - 1``, the prompt's last token."""

    start: int
    end: int
    length: int
    cut: bool = True
    """Pool at most the probe's ``max_tokens`` of ``[start, end)`` (one turn, as the classifier reads a text);
    False: all of it (a whole conversation)."""
    reply: bool = True
    """Read the reply too (a score after each reply token); False: one score, at the prompt's last token."""

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end <= self.length or self.length < 1:
            raise ValueError(f"bad prompt span {self}")


@dataclass
class ProbePool:
    """One sequence's running pool for one probe."""

    seen: int = 0
    """Tokens this row has shown the probe, skipped ones included."""
    count: int = 0
    """Tokens pooled."""
    acc: torch.Tensor | None = None
    """The running sum (mean pooling) or max, ``[k]``; None before the first pooled token."""

    def update(self, probe: LinearProbe, x: torch.Tensor, span: PromptSpan | None = None) -> torch.Tensor:
        """Pool ``x [n, k]`` (this row's next n real tokens, in order); the score after each, ``[n]`` (NaN
        where there is none: without ``span``, a skipped token or fewer than ``min_tokens`` pooled; with
        it, any token before the prompt's last)."""
        n = x.shape[0]
        pos = torch.arange(self.seen, self.seen + n, device=x.device)
        self.seen += n
        if span is None:
            pooled_here = pos >= probe.skip
        else:
            end = span.end if probe.max_tokens is None or not span.cut else min(span.end, span.start + probe.max_tokens)
            pooled_here = ((pos >= span.start) & (pos < end)) | ((pos >= span.length) & span.reply)
        index = pooled_here.long().cumsum(0) - 1  # per token: its pool's row in ``running`` (-1: the earlier pool)
        counts = self.count + index + 1
        xs = x[pooled_here].double()
        m = xs.shape[0]
        rows = []
        earlier = int(self.acc is not None)
        if earlier:
            assert self.acc is not None
            rows.append(self.acc.to(x.device)[None] / (self.count if probe.pool == "mean" else 1))
        if m:
            if probe.pool == "mean":
                running = xs.cumsum(0)
                if self.acc is not None:
                    running = running + self.acc.to(x.device)
                steps = torch.arange(self.count + 1, self.count + m + 1, device=x.device, dtype=torch.float64)
                rows.append(running / steps[:, None])
            else:
                running = xs.cummax(0).values
                if self.acc is not None:
                    running = torch.maximum(running, self.acc.to(x.device))
                rows.append(running)
            self.acc, self.count = running[-1], self.count + m
        out = torch.full((n,), math.nan, dtype=torch.float32, device=x.device)
        if not rows:
            return out
        pooled = torch.cat(rows)
        scores = torch.sigmoid(pooled @ probe.weights.to(x.device, torch.float64) + probe.bias).float()
        at = index + earlier
        if span is None:
            ok = pooled_here & (counts >= probe.min_tokens)
        else:
            ok = ((pos == span.length - 1) | ((pos >= span.length) & span.reply)) & (counts >= 1)
        out[ok] = scores[at[ok]]
        return out
