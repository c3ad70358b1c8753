"""How a label is compared with a context by sentence embedding: one definition for explainer and scorer.

Each context is read two ways: a *long* view (a dozen tokens up to the strongest activation: the topic)
and a *short* view (the few tokens at it: the token identity). Their similarities to the label are
averaged, so both "Python code" (topic) and '"import" tokens' (token) labels can be judged fairly.
Non-firing contexts are read around their middle token.

Two ways to embed a view: ``sentence`` runs the sentence encoder on the view's text (better: held-out
AUC 0.58 vs 0.55 on a 150-feature sample of the default SAE), ``tokens`` averages the embeddings of
the view's token strings, each encoded once per process (~500x cheaper per feature on a CPU, which is
what labels a 9k-feature SAE in minutes instead of hours).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from steerlab.errors import InvalidInputError
from steerlab.features.embeddings import EMBED_DIM
from steerlab.features.explain.base import context_text, window
from steerlab.features.schema import Example

LONG = (12, 2)
SHORT = (1, 1)
MODES = ("sentence", "tokens")
Encoder = Callable[[Sequence[str]], np.ndarray]


def example_views(examples: Sequence[Example]) -> tuple[list[str], list[str]]:
    """(long texts, short texts) of the examples, in order."""
    return ([context_text(e, *LONG) for e in examples], [context_text(e, *SHORT) for e in examples])


class ContextVectors:
    """Embeddings of both views of a set of examples; ``similarity`` gives the label-vs-context score."""

    def __init__(self, examples: Sequence[Example], encode: Encoder, mode: str = "sentence"):
        if mode not in MODES:
            raise InvalidInputError(f"unknown mode {mode!r}", field="contexts", allowed=", ".join(MODES))
        if mode == "sentence":
            long_texts, short_texts = example_views(examples)
            self.long, self.short = encode(long_texts), encode(short_texts)  # [n, 384] each
        else:
            self.long, self.short = _token_bag(examples, LONG, encode), _token_bag(examples, SHORT, encode)

    def __len__(self) -> int:
        return len(self.long)

    def similarity(self, label_vecs: np.ndarray) -> np.ndarray:
        """``[labels, contexts]`` mean of the long- and short-view cosine similarities."""
        return 0.5 * (label_vecs @ self.long.T + label_vecs @ self.short.T)

    def mean(self) -> np.ndarray:
        """Mean of both views (``[384]``): the direction the contexts point to, for ranking candidates."""
        return 0.5 * (self.long.mean(0) + self.short.mean(0)) if len(self) else np.zeros(self.long.shape[1])


def view_texts(examples: Sequence[Example], mode: str) -> list[str]:
    """Every text ``ContextVectors`` will encode for these examples (to encode a whole batch at once)."""
    if mode == "sentence":
        long_texts, short_texts = example_views(examples)
        return long_texts + short_texts
    return list(dict.fromkeys(t for view in (LONG, SHORT) for e in examples for t in _window_tokens(e, view)))


def _window_tokens(example: Example, view: tuple[int, int]) -> list[str]:
    start, end = window(example, *view)
    return [t.strip() for t in example.tokens[start:end] if t.strip()]


def _token_bag(examples: Sequence[Example], view: tuple[int, int], encode: Encoder) -> np.ndarray:
    """``[n, 384]``: normalized mean of the embeddings of each view's (non-blank) token strings."""
    windows = [_window_tokens(e, view) for e in examples]
    vocab = list(dict.fromkeys(t for w in windows for t in w))
    table = dict(zip(vocab, encode(vocab))) if vocab else {}
    out = np.zeros((len(examples), EMBED_DIM), dtype=np.float32)
    for i, toks in enumerate(windows):
        if toks:
            v = np.mean([table[t] for t in toks], axis=0)
            out[i] = v / max(float(np.linalg.norm(v)), 1e-9)
    return out


def auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC of positives vs negatives along the last axis (ties count half): ``[..., n], [..., m] -> [...]``."""
    if pos.shape[-1] == 0 or neg.shape[-1] == 0:
        return np.full(pos.shape[:-1], np.nan)
    diff = pos[..., :, None] - neg[..., None, :]
    return ((diff > 0).sum((-1, -2)) + 0.5 * (diff == 0).sum((-1, -2))) / (pos.shape[-1] * neg.shape[-1])
