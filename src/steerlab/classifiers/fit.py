"""Logistic regressions: sparse on SAE features (L1, then the top k refitted), dense on residuals, TF-IDF.

Inputs are standardised for fitting and the scaling is folded back into the weights, so a saved
classifier is ``sigmoid(w . x + b)`` on the pooled features as extracted, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Linear:
    """``logit = weights . x[indices] + bias`` (indices None: every column)."""

    weights: np.ndarray
    bias: float
    indices: np.ndarray | None = None

    def logits(self, x: np.ndarray) -> np.ndarray:
        cols = x if self.indices is None else x[:, self.indices]
        return cols.astype(np.float64) @ self.weights.astype(np.float64) + self.bias


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(0)
    sd = x.std(0)
    return mu, np.where(sd > 1e-8, sd, 1.0)


def _fold(w: np.ndarray, b: float, mu: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, float]:
    return (w / sd).astype(np.float32), float(b - (w * mu / sd).sum())


def fit_dense(x: np.ndarray, y: np.ndarray, c: float, seed: int = 0) -> Linear:
    """L2 logistic regression on every column (the raw residual probe)."""
    from sklearn.linear_model import LogisticRegression

    mu, sd = _standardise(x)
    lr = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit((x - mu) / sd, y)
    w, b = _fold(lr.coef_[0], float(lr.intercept_[0]), mu, sd)
    return Linear(w, b)


def fit_sparse(x: np.ndarray, y: np.ndarray, c: float, max_features: int, seed: int = 0) -> Linear:
    """L1 logistic regression picks the features; the ``max_features`` largest (standardised) weights
    are kept and refitted with a mild L2 penalty, which restores the calibration L1 shrinkage costs."""
    from sklearn.linear_model import LogisticRegression

    live = np.flatnonzero(x.std(0) > 1e-8)
    if live.size == 0:
        return Linear(np.zeros(0, np.float32), float(np.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6))), live)
    xs = x[:, live]
    mu, sd = _standardise(xs)
    l1 = LogisticRegression(l1_ratio=1.0, solver="liblinear", C=c, max_iter=2000, random_state=seed)
    l1.fit((xs - mu) / sd, y)
    coef = l1.coef_[0]
    keep = np.flatnonzero(coef)
    if keep.size == 0:
        keep = np.argsort(-np.abs(((xs - mu) / sd * (y[:, None] - y.mean())).mean(0)))[:1]
    keep = keep[np.argsort(-np.abs(coef[keep]), kind="stable")][:max_features]
    keep = np.sort(keep)
    sub = (xs[:, keep] - mu[keep]) / sd[keep]
    refit = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(sub, y)
    w, b = _fold(refit.coef_[0], float(refit.intercept_[0]), mu[keep], sd[keep])
    return Linear(w, b, live[keep].astype(np.int64))


@dataclass
class TextModel:
    """TF-IDF (word 1-2 grams, sublinear tf, l2 norm) + logistic regression."""

    vocabulary: list[str]
    idf: np.ndarray
    linear: Linear

    def vectorizer(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(**TFIDF_ARGS, vocabulary={t: i for i, t in enumerate(self.vocabulary)})
        vec.idf_ = self.idf
        return vec

    def logits(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.vectorizer().transform(texts) @ self.linear.weights.astype(np.float64)).ravel() + (
            self.linear.bias
        )


TFIDF_ARGS = {"ngram_range": (1, 2), "sublinear_tf": True, "lowercase": True, "dtype": np.float64}


def fit_text(texts: list[str], y: np.ndarray, c: float, max_terms: int = 5000, seed: int = 0) -> TextModel:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(**TFIDF_ARGS, max_features=max_terms, min_df=2 if len(texts) >= 20 else 1)
    x = vec.fit_transform(texts)
    lr = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x, y)
    vocab = [""] * len(vec.vocabulary_)
    for term, i in vec.vocabulary_.items():
        vocab[i] = term
    return TextModel(
        vocab, vec.idf_.astype(np.float64), Linear(lr.coef_[0].astype(np.float32), float(lr.intercept_[0]))
    )
