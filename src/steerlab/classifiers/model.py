"""A trained classifier: its scores, and the features (and tokens) that moved each score.

``kind`` says what it reads: ``sae`` (pooled SAE codes, a few features), ``raw`` (the pooled residual
at the SAE's hookpoint) or ``text`` (TF-IDF). Every kind explains its decisions: ``sae`` by its own
features; ``raw`` through the SAE's decomposition of the residual (``h = f @ W_dec + b_dec + error``,
so the probe's logit splits into ``f_j * (W_dec_j . w)`` per feature: exact for mean pooling, a
first-order view for max pooling); ``text`` by the n-grams present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from steerlab.classifiers.fit import Linear, TextModel, sigmoid
from steerlab.classifiers.pooling import Pooled, pooled_features, token_codes, tokenize

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
            assert self.text_model is not None
            return self.text_model.logits(texts)
        assert pooled is not None
        x = pooled.sae[self.pool] if self.kind == "sae" else pooled.raw[self.pool]
        return self.linear.logits(x)

    def score(self, lab, texts: list[str], top: int = 5, batch_size: int = 16) -> list[dict]:
        """One result per text: ``score`` (probability of the positive class), ``flagged`` (score >=
        threshold), ``features`` (the ``top`` that moved the score most: index, label, contribution
        to the logit), ``truncated`` (cut to ``max_tokens``)."""
        if not texts:
            return []
        if self.kind == "text":
            logits = self.text_model.logits(texts)  # type: ignore[union-attr]
            truncated = [t.truncated for t in tokenize(lab, texts, self.max_tokens)]
            feats = [self._text_features(t, top) for t in texts]
        else:
            pooled = pooled_features(lab, texts, self.max_tokens, batch_size)
            logits = self.logits_from(pooled, texts)
            truncated = pooled.truncated
            contrib = self._feature_contributions(lab, pooled)
            feats = [self._top(lab, row, top) for row in contrib]
        scores = sigmoid(logits)
        return [
            {
                "score": float(s),
                "flagged": bool(s >= self.threshold),
                "features": f,
                "truncated": bool(t),
            }
            for s, f, t in zip(scores, feats, truncated)
        ]

    # ---------------------------------------------------------------- explanations
    def feature_directions(self, lab) -> np.ndarray:
        """``W_dec @ w``: what one unit of each SAE feature adds to the raw probe's logit."""
        if self._feature_dirs is None:
            w_dec = lab.sae.W_dec.detach().float().cpu().numpy()
            self._feature_dirs = w_dec @ self.linear.weights.astype(np.float32)
        return self._feature_dirs

    def _feature_contributions(self, lab, pooled: Pooled) -> np.ndarray:
        """[n, d_sae] contributions of each feature to each text's logit (sparse rows in practice)."""
        if self.kind == "sae":
            out = np.zeros((len(pooled.n_tokens), lab.sae.cfg.d_sae), np.float32)
            idx = self.linear.indices
            out[:, idx] = pooled.sae[self.pool][:, idx] * self.linear.weights
            return out
        return pooled.sae["mean"] * self.feature_directions(lab)[None, :]

    def label_of(self, lab, index: int) -> str:
        labels = getattr(lab, "labels", None) or {}
        return labels.get(index) or self.labels.get(index, "")

    def _top(self, lab, row: np.ndarray, top: int) -> list[dict]:
        order = np.argsort(-np.abs(row), kind="stable")[:top]
        return [
            {"index": int(i), "label": self.label_of(lab, int(i)), "contribution": float(row[i])}
            for i in order
            if row[i] != 0
        ]

    def _text_features(self, text: str, top: int) -> list[dict]:
        tm = self.text_model
        assert tm is not None
        x = tm.vectorizer().transform([text]).tocoo()
        contrib = [(int(j), float(v) * float(tm.linear.weights[j])) for j, v in zip(x.col, x.data)]
        contrib.sort(key=lambda c: -abs(c[1]))
        return [{"index": j, "label": tm.vocabulary[j], "contribution": c} for j, c in contrib[:top] if c != 0]

    def explain(self, lab, text: str, top: int = 10) -> dict:
        """The score of one text, the features that moved it, and each token's share of the logit
        (a heatmap: ``tokens[i].contribution`` sums, with ``bias``, to the logit for mean pooling;
        for max pooling each feature's share goes to the token where it peaked)."""
        result = self.score(lab, [text], top=top)[0]
        if self.kind == "text":
            return {**result, "bias": self.linear.bias, "tokens": []}
        tc = token_codes(lab, text, self.max_tokens)
        if self.kind == "sae":
            x = tc.codes[:, self.linear.indices].numpy()
            w = self.linear.weights
        else:
            x = tc.resid.numpy()
            w = self.linear.weights
        n = x.shape[0]
        if self.pool == "mean":
            per_token = (x * w).sum(1) / max(n, 1)
        else:
            per_token = np.zeros(n)
            peaks = x.argmax(0)
            np.add.at(per_token, peaks, x[peaks, np.arange(x.shape[1])] * w)
        tokens = [{"token": t, "contribution": float(c)} for t, c in zip(tc.tokens, per_token)]
        return {**result, "bias": self.linear.bias, "tokens": tokens}

    # ---------------------------------------------------------------- description
    def summary(self, lab=None, top: int = 20) -> dict:
        """What it reads and its largest weights (features with labels; n-grams for ``text``)."""
        if self.kind == "sae":
            order = np.argsort(-np.abs(self.linear.weights), kind="stable")[:top]
            weights = [
                {
                    "index": int(self.linear.indices[i]),  # type: ignore[index]
                    "label": self.label_of(lab, int(self.linear.indices[i]))
                    if lab
                    else self.labels.get(
                        int(self.linear.indices[i]),
                        "",  # type: ignore[index]
                    ),
                    "weight": float(self.linear.weights[i]),
                }
                for i in order
            ]
        elif self.kind == "text":
            tm = self.text_model
            order = np.argsort(-np.abs(tm.linear.weights), kind="stable")[:top]  # type: ignore[union-attr]
            weights = [
                {"index": int(i), "label": tm.vocabulary[i], "weight": float(tm.linear.weights[i])}  # type: ignore[union-attr]
                for i in order
            ]
        else:
            weights = []
            if lab is not None:
                dirs = self.feature_directions(lab)
                order = np.argsort(-np.abs(dirs), kind="stable")[:top]
                weights = [
                    {"index": int(i), "label": self.label_of(lab, int(i)), "weight": float(dirs[i])} for i in order
                ]
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
