"""Train the three kinds in one run on one split, compare them, keep the one asked for (or the best).

Split (stratified, seeded): 20% test, then 20% of the rest for validation. Pooling and penalty are
chosen on validation; the decision threshold and which kind is "best" out of source where the data has
sources to leave out (below), else on validation; the chosen configuration is refitted
on train + validation and reported on test, and on any held-out sources given (texts from other
files or families, never seen in training; they are reported, never chosen on).

``best`` chooses the kind out of source when it can: on the training rows (train + validation), each
source of a class with at least two sources is held out in turn with a seeded share of the other class,
every kind is refitted with its validation-chosen setting on the rest and scored on the held-out rows
(leave-one-source-out, ``_source_folds``). The kind with the highest mean AUROC over those folds wins;
within 0.005 of it the more interpretable kind (sae, then raw, then text). In-distribution validation
saturates on separable tasks and cannot tell kinds apart; a new source of ordinary text is what a
deployed detector meets. When no class has two sources (one ``--pos`` and one ``--neg`` file) the
validation AUROC decides, as before; the report's ``selected_by`` says which. The same folds' pooled
predictions set each kind's threshold (best F1; ``threshold_from``): a saturated validation split puts
it anywhere in a wide gap, and a new source's texts land inside that gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from steerlab.classifiers import metrics
from steerlab.classifiers.data import Example
from steerlab.classifiers.fit import Linear, TextModel, fit_dense, fit_sparse, fit_text, sigmoid
from steerlab.classifiers.model import KINDS, Classifier
from steerlab.classifiers.pooling import POOLS, Pooled, pooled_features
from steerlab.errors import InvalidInputError

SAE_C = (0.01, 0.03, 0.1, 0.3)
RAW_C = (0.001, 0.01, 0.1)
TEXT_C = (1.0, 10.0)
PREFERENCE = ("sae", "raw", "text")
TIE = 0.005


def _split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for label in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = max(1, round(0.2 * len(idx)))
        n_val = max(1, round(0.2 * (len(idx) - n_test)))
        test += list(idx[:n_test])
        val += list(idx[n_test : n_test + n_val])
        train += list(idx[n_test + n_val :])
    return np.sort(train), np.sort(val), np.sort(test)


def _subset(p: Pooled, rows: np.ndarray) -> Pooled:
    return Pooled(
        {k: v[rows] for k, v in p.sae.items()},
        {k: v[rows] for k, v in p.raw.items()},
        [p.n_tokens[i] for i in rows],
        [p.truncated[i] for i in rows],
    )


def _source_folds(
    sources: list[str], y: np.ndarray, rows: np.ndarray, seed: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(source, rest, held)`` per leave-one-source-out fold over ``rows``: each source of a class with at
    least two sources, held out with one of as many seeded shares of the other class's rows; folds whose
    held-out or remaining rows lack a class are left out."""
    src = np.array(sources, dtype=object)
    rng = np.random.default_rng(seed + 1)
    folds = []
    for label in (1, 0):
        mine = rows[y[rows] == label]
        names = sorted({str(s) for s in src[mine]})
        if len(names) < 2:
            continue
        shares = np.array_split(rng.permutation(rows[y[rows] != label]), len(names))
        for name, share in zip(names, shares):
            held = np.sort(np.concatenate([mine[src[mine] == name], share]))
            rest = np.setdiff1d(rows, held)
            if len(set(y[held].tolist())) == 2 and len(set(y[rest].tolist())) == 2:
                folds.append((name, rest, held))
    return folds


def _candidates(kind: str, max_features: int) -> list[tuple[str, float]]:
    if kind == "sae":
        return [(pool, c) for pool in POOLS for c in SAE_C]
    if kind == "raw":
        return [(pool, c) for pool in POOLS for c in RAW_C]
    return [("tfidf", c) for c in TEXT_C]


def _fit(
    kind: str, pool: str, c: float, pooled: Pooled, texts: list[str], y: np.ndarray, max_features: int, seed: int
) -> Linear | TextModel:
    if kind == "sae":
        return fit_sparse(pooled.sae[pool], y, c, max_features, seed)
    if kind == "raw":
        return fit_dense(pooled.raw[pool], y, c, seed)
    return fit_text(texts, y, c, seed=seed)


def _linear(model: Linear | TextModel) -> Linear:
    return model.linear if isinstance(model, TextModel) else model


def _logits(kind: str, pool: str, model: Linear | TextModel, pooled: Pooled, texts: list[str]) -> np.ndarray:
    if isinstance(model, TextModel):
        return model.logits(texts)
    return model.logits(pooled.sae[pool] if kind == "sae" else pooled.raw[pool])


def train(
    lab: Any,
    examples: list[Example],
    name: str,
    kind: str = "best",
    max_tokens: int = 256,
    max_features: int = 32,
    seed: int = 0,
    heldout: dict[str, list[Example]] | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    extracted: Callable[[int, int], None] | None = None,
    batch_tokens: int | None = None,
    admit: Callable[[int], None] | None = None,
    features: Callable[..., Pooled] | None = None,
    every_kind: dict[str, Classifier] | None = None,
) -> Classifier:
    """A classifier of ``kind`` (or the best on validation); its ``report`` holds every kind's figures.

    ``progress(message)`` says what it is doing; ``extracted(done, total)`` counts texts read through the
    model (training and held-out together); ``batch_tokens`` and ``admit``: see ``pooled_features``;
    ``features``: a drop-in for ``pooled_features`` (same arguments), e.g. one that caches per text;
    ``every_kind``: filled with each kind's refitted classifier (the same ``report``), for a caller that
    ships more than the one returned."""
    if kind not in (*KINDS, "best"):
        raise InvalidInputError(f"unknown kind {kind!r}", field="kind", allowed=", ".join([*KINDS, "best"]))
    if max_tokens < 1:
        raise InvalidInputError(f"must be >= 1, got {max_tokens}", field="max_tokens")
    if max_features < 1:
        raise InvalidInputError(f"must be >= 1, got {max_features}", field="max_features")
    if lab.sae is None:
        raise InvalidInputError("classifiers read an SAE's features; load one", field="sae")
    say = progress or (lambda _msg: None)
    texts = [e.text for e in examples]
    y = np.array([e.label for e in examples], dtype=np.int64)
    heldout = {k: v for k, v in (heldout or {}).items() if v}
    t0 = time.perf_counter()
    say(f"extracting features of {len(texts)} texts (+{sum(len(v) for v in heldout.values())} held out)")
    total = len(texts) + sum(len(v) for v in heldout.values())
    offset = 0

    def step(done: int, _n: int) -> None:
        if done % 256 < 16:
            say(f"features {offset + done}/{total}")
        if extracted is not None:
            extracted(offset + done, total)

    extract = features or pooled_features
    pooled = extract(lab, texts, max_tokens, progress=step, batch_tokens=batch_tokens, admit=admit)
    held_pooled = {}
    offset = len(texts)
    for k, v in heldout.items():
        held_pooled[k] = extract(
            lab, [e.text for e in v], max_tokens, progress=step, batch_tokens=batch_tokens, admit=admit
        )
        offset += len(v)
    extract_s = time.perf_counter() - t0
    train_i, val_i, test_i = _split(y, seed)
    fit_i = np.concatenate([train_i, val_i])
    folds = _source_folds([e.source for e in examples], y, np.sort(fit_i), seed)
    parts = {
        n: (_subset(pooled, i), [texts[j] for j in i], y[i])
        for n, i in (("train", train_i), ("val", val_i), ("test", test_i), ("fit", fit_i))
    }

    kinds_report: dict[str, dict] = {}
    finals: dict[str, tuple[str, Linear | TextModel, float]] = {}
    for k in KINDS:
        say(f"fitting {k}")
        tried = []
        p_tr, t_tr, y_tr = parts["train"]
        p_va, t_va, y_va = parts["val"]
        for pool, c in _candidates(k, max_features):
            model = _fit(k, pool, c, p_tr, t_tr, y_tr, max_features, seed)
            val_p = sigmoid(_logits(k, pool, model, p_va, t_va))
            n_feat = len(_linear(model).weights)
            tried.append(
                {
                    "pool": pool,
                    "C": c,
                    "n_features": int(n_feat),
                    "val_auroc": metrics.auroc(y_va, val_p),
                    "_val_p": val_p,
                }
            )
        best = max(tried, key=lambda r: ((r["val_auroc"] or 0.0), -r["n_features"], -r["C"]))
        source_out = None
        threshold = metrics.best_f1_threshold(y_va, best["_val_p"])
        if folds:
            by_source, fold_y, fold_ps = {}, [], []
            for src, rest, held_rows in folds:
                say(f"{k}: leaving out source {src}")
                model = _fit(
                    k,
                    best["pool"],
                    best["C"],
                    _subset(pooled, rest),
                    [texts[j] for j in rest],
                    y[rest],
                    max_features,
                    seed,
                )
                fold_p = sigmoid(
                    _logits(k, best["pool"], model, _subset(pooled, held_rows), [texts[j] for j in held_rows])
                )
                by_source[src] = metrics.auroc(y[held_rows], fold_p)
                fold_y.append(y[held_rows])
                fold_ps.append(fold_p)
            values = [v for v in by_source.values() if v is not None]
            source_out = {
                "mean_auroc": float(np.mean(values)) if values else None,
                "min_auroc": float(min(values)) if values else None,
                "by_source": by_source,
            }
            # the decision threshold where a new source's texts would sit, not where a saturated
            # in-distribution validation split happens to put it
            threshold = metrics.best_f1_threshold(np.concatenate(fold_y), np.concatenate(fold_ps))
        p_fit, t_fit, y_fit = parts["fit"]
        final = _fit(k, best["pool"], best["C"], p_fit, t_fit, y_fit, max_features, seed)
        p_te, t_te, y_te = parts["test"]
        test_p = sigmoid(_logits(k, best["pool"], final, p_te, t_te))
        report = {
            "pool": best["pool"],
            "C": best["C"],
            "n_features": best["n_features"],
            "val_auroc": best["val_auroc"],
            "threshold": threshold,
            "threshold_from": "leave-one-source-out" if folds else "validation",
            "by_pool": {
                pool: max((r["val_auroc"] or 0.0) for r in tried if r["pool"] == pool)
                for pool in {r["pool"] for r in tried}
            },
            "test": metrics.report(y_te, test_p, threshold),
        }
        held = {}
        for src, exs in heldout.items():
            hy = np.array([e.label for e in exs])
            hp = sigmoid(_logits(k, best["pool"], final, held_pooled[src], [e.text for e in exs]))
            held[src] = metrics.report(hy, hp, threshold)
            # what a guard's fixed thresholds would do on the pooled text (the 0.5 and 0.9)
            held[src]["at"] = {str(t): metrics.f1_at(hy, hp, t) for t in (0.5, 0.9)}
        if held:
            report["heldout"] = held
        if source_out is not None:
            report["source_out"] = source_out
        kinds_report[k] = report
        finals[k] = (best["pool"], final, threshold)

    def merit(k: str) -> float:
        r = kinds_report[k]
        return ((r.get("source_out") or {}).get("mean_auroc") if folds else r["val_auroc"]) or 0.0

    chosen = kind
    if kind == "best":
        top_merit = max(merit(k) for k in KINDS)
        chosen = next(k for k in PREFERENCE if merit(k) >= top_merit - TIE)
    cfg = lab.sae.cfg
    report = {
        "counts": {"pos": int(y.sum()), "neg": int(len(y) - y.sum())},
        "split": {"train": int(len(train_i)), "val": int(len(val_i)), "test": int(len(test_i)), "seed": seed},
        "sources": sorted({e.source for e in examples}),
        "heldout_sources": {k: len(v) for k, v in heldout.items()},
        "truncated": int(sum(pooled.truncated)),
        "max_tokens": max_tokens,
        "extract_seconds": round(extract_s, 1),
        "kinds": kinds_report,
        "chosen": chosen,
        "asked": kind,
        "selected_by": "asked" if kind != "best" else "leave-one-source-out" if folds else "validation",
        "source_folds": {src: {"held_out": int(len(h)), "trained_on": int(len(r))} for src, r, h in folds},
    }

    def classifier_of(k: str) -> Classifier:
        pool, final, threshold = finals[k]
        labels = {}
        if k == "sae":
            indices = _linear(final).indices
            labels = {int(i): lab.labels.get(int(i), "") for i in (indices if indices is not None else [])}
        return Classifier(
            name=name,
            kind=k,
            pool=pool,
            linear=_linear(final),
            threshold=threshold,
            max_tokens=max_tokens,
            model=lab.model_name,
            hookpoint=cfg.hookpoint,
            layer=cfg.layer,
            sae_id=lab.sae_id,
            text_model=final if isinstance(final, TextModel) else None,
            labels=labels,
            report=report,
        )

    if every_kind is not None:
        every_kind.update({k: classifier_of(k) for k in KINDS})
    return classifier_of(chosen)
