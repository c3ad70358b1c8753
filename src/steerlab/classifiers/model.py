"""A trained classifier: its scores, and the features (and tokens) that moved each score.

``kind`` says what it reads: ``sae`` (pooled SAE codes, a few features), ``raw`` (the pooled residual
at the SAE's hookpoint) or ``text`` (TF-IDF). Every kind explains its decisions: ``sae`` by its own
features; ``raw`` through the SAE's decomposition of the residual (``h = f @ W_dec + b_dec + error``,
so the probe's logit splits into ``f_j * (W_dec_j . w)`` per feature: exact for mean pooling, a
first-order view for max pooling); ``text`` by the n-grams present.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steerlab.classifiers.fit import Linear, TextModel, sigmoid
from steerlab.classifiers.pooling import Pooled, pooled_features, token_codes, token_count, tokenize

KINDS = ("sae", "raw", "text")


@dataclass
class Classifier:
    name: str
    kind: str
    pool: str
    linear: Linear
    threshold: float
    max_tokens: int
    model: str
    hookpoint: str
    layer: int | None
    sae_id: str
    text_model: TextModel | None = None
    labels: dict[int, str] = field(default_factory=dict)
    """Labels of the features it uses, as the feature database had them at training time."""
    report: dict = field(default_factory=dict)
    _feature_dirs: np.ndarray | None = field(default=None, repr=False)

    # ---------------------------------------------------------------- scores
    def logits_from(self, pooled: Pooled | None, texts: list[str]) -> np.ndarray:
        if self.kind == "text":
            return self._text().logits(texts)
        assert pooled is not None
        x = pooled.sae[self.pool] if self.kind == "sae" else pooled.raw[self.pool]
        return self.linear.logits(x)

    def score(
        self,
        lab: Any,
        texts: list[str],
        top: int = 5,
        batch_size: int = 16,
        *,
        tokens: bool = False,
        batch_tokens: int | None = None,
        admit: Callable[[int], None] | None = None,
    ) -> list[dict]:
        """One result per text: ``score`` (probability of the positive class), ``flagged`` (score >=
        threshold), ``features`` (the ``top`` that moved the score most: index, label, contribution
        to the logit), ``truncated`` (cut to ``max_tokens``). With ``tokens``, also each token's share
        of the logit (``tokens``: token, contribution) and ``bias`` (see ``explain``; one more forward
        per text). ``batch_tokens`` and ``admit``: see ``pooling.pooled_features``."""
        if not texts:
            return []
        if self.kind == "text":
            logits = self._text().logits(texts)
            truncated = [t.truncated for t in tokenize(lab, texts, self.max_tokens)]
            feats = [self._text_features(t, top) for t in texts]
        else:
            pooled = pooled_features(lab, texts, self.max_tokens, batch_size, batch_tokens=batch_tokens, admit=admit)
            logits = self.logits_from(pooled, texts)
            truncated = pooled.truncated
            contrib = self._feature_contributions(lab, pooled)
            feats = [self._top(lab, row, top) for row in contrib]
        scores = sigmoid(logits)
        out = [
            {
                "score": float(s),
                "flagged": bool(s >= self.threshold),
                "features": f,
                "truncated": bool(t),
            }
            for s, f, t in zip(scores, feats, truncated)
        ]
        if tokens:
            for result, text in zip(out, texts):
                result["bias"] = self.linear.bias
                result["tokens"] = self.token_contributions(lab, text, admit=admit)
        return out

    def _text(self) -> TextModel:
        if self.text_model is None:
            raise ValueError(f"classifier {self.name!r} of kind {self.kind!r} has no text model")
        return self.text_model

    # ---------------------------------------------------------------- explanations
    def feature_directions(self, lab: Any) -> np.ndarray:
        """``W_dec @ w``: what one unit of each SAE feature adds to the raw probe's logit."""
        dirs = self._feature_dirs
        if dirs is None:
            w_dec = lab.sae.W_dec.detach().float().cpu().numpy()
            dirs = self._feature_dirs = w_dec @ self.linear.weights.astype(np.float32)
        return dirs

    def _feature_contributions(self, lab: Any, pooled: Pooled) -> np.ndarray:
        """[n, d_sae] contributions of each feature to each text's logit (sparse rows in practice)."""
        if self.kind == "sae":
            out = np.zeros((len(pooled.n_tokens), lab.sae.cfg.d_sae), np.float32)
            idx = self._indices()
            out[:, idx] = pooled.sae[self.pool][:, idx] * self.linear.weights
            return out
        return pooled.sae["mean"] * self.feature_directions(lab)[None, :]

    def label_of(self, lab: Any, index: int) -> str:
        labels = getattr(lab, "labels", None) or {}
        return labels.get(index) or self.labels.get(index, "")

    def _top(self, lab: Any, row: np.ndarray, top: int) -> list[dict]:
        order = np.argsort(-np.abs(row), kind="stable")[:top]
        return [
            {"index": int(i), "label": self.label_of(lab, int(i)), "contribution": float(row[i])}
            for i in order
            if row[i] != 0
        ]

    def _text_features(self, text: str, top: int) -> list[dict]:
        tm = self._text()
        x = tm.vectorizer().transform([text]).tocoo()
        contrib = [(int(j), float(v) * float(tm.linear.weights[j])) for j, v in zip(x.col, x.data)]
        contrib.sort(key=lambda c: -abs(c[1]))
        return [{"index": j, "label": tm.vocabulary[j], "contribution": c} for j, c in contrib[:top] if c != 0]

    def token_contributions(self, lab: Any, text: str, admit: Callable[[int], None] | None = None) -> list[dict]:
        """Each token's share of ``text``'s logit, as ``{token, contribution}`` (empty for ``text``): with
        ``bias`` they sum to the logit for mean pooling; for max pooling each feature's (or residual
        dimension's) share goes to the token where it peaked."""
        if self.kind == "text":
            return []
        if admit is not None:
            admit(token_count(lab, [text], self.max_tokens))
        tc = token_codes(lab, text, self.max_tokens)
        if self.kind == "sae":
            x = tc.codes[:, self._indices()].numpy()
        else:
            x = tc.resid.numpy()
        w = self.linear.weights
        n = x.shape[0]
        if self.pool == "mean":
            per_token = (x * w).sum(1) / max(n, 1)
        else:
            per_token = np.zeros(n)
            if x.shape[1]:
                peaks = x.argmax(0)
                np.add.at(per_token, peaks, x[peaks, np.arange(x.shape[1])] * w)
        return [{"token": t, "contribution": float(c)} for t, c in zip(tc.tokens, per_token)]

    def explain(self, lab: Any, text: str, top: int = 10) -> dict:
        """The score of one text, the features that moved it, and each token's share of the logit
        (``tokens``, a heatmap; see ``token_contributions``) with ``bias``."""
        return self.score(lab, [text], top=top, tokens=True)[0]

    def _indices(self) -> np.ndarray:
        if self.linear.indices is None:
            raise ValueError(f"classifier {self.name!r} of kind {self.kind!r} reads no SAE features")
        return self.linear.indices

    # ---------------------------------------------------------------- description
    def summary(self, lab: Any = None, top: int = 20) -> dict:
        """What it reads and its largest weights (features with labels; n-grams for ``text``)."""
        weights: list[dict] = []
        if self.kind == "sae":
            idx = self._indices()
            order = np.argsort(-np.abs(self.linear.weights), kind="stable")[:top]
            for i in order:
                j = int(idx[i])
                label = self.label_of(lab, j) if lab is not None else self.labels.get(j, "")
                weights.append({"index": j, "label": label, "weight": float(self.linear.weights[i])})
        elif self.kind == "text":
            tm = self._text()
            order = np.argsort(-np.abs(tm.linear.weights), kind="stable")[:top]
            weights = [
                {"index": int(i), "label": tm.vocabulary[i], "weight": float(tm.linear.weights[i])} for i in order
            ]
        elif lab is not None:
            dirs = self.feature_directions(lab)
            order = np.argsort(-np.abs(dirs), kind="stable")[:top]
            weights = [{"index": int(i), "label": self.label_of(lab, int(i)), "weight": float(dirs[i])} for i in order]
        return {
            "name": self.name,
            "kind": self.kind,
            "pool": self.pool,
            "threshold": self.threshold,
            "max_tokens": self.max_tokens,
            "model": self.model,
            "hookpoint": self.hookpoint,
            "sae_id": self.sae_id,
            "n_features": int(len(self.linear.weights)) if self.kind != "text" else 0,
            "weights": weights,
            "report": self.report,
        }
