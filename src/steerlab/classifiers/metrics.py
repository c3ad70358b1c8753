"""Detection metrics on held-out scores: AUROC, F1 at a threshold, calibration (ECE, Brier)."""

from __future__ import annotations

import numpy as np


def auroc(y: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the ROC curve (None when one class is missing)."""
    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def f1_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    y = np.asarray(y).astype(bool)
    hit = np.asarray(p) >= threshold
    tp, fp, fn = int((hit & y).sum()), int((hit & ~y).sum()), int((~hit & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    fpr = fp / max(int((~y).sum()), 1)
    return {"threshold": threshold, "f1": f1, "precision": precision, "recall": recall, "false_positive_rate": fpr}


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold (one of the scores) with the best F1, chosen on validation data."""
    candidates = np.unique(np.concatenate([np.asarray(p), [0.5]]))
    return float(max(candidates, key=lambda t: (f1_at(y, p, float(t))["f1"], -abs(t - 0.5))))


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.mean() * abs(p[sel].mean() - y[sel].mean())
    return float(total)


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def report(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    y = np.asarray(y)
    return {
        "n": int(len(y)),
        "n_pos": int(np.asarray(y).sum()),
        "auroc": auroc(y, p),
        **{k: v for k, v in f1_at(y, p, threshold).items()},
        "ece": ece(y, p),
        "brier": brier(y, p),
    }
