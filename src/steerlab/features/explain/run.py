"""Labeling a whole SAE in a store: explain, score, write, in resumable batches.

Each batch's labels and label embeddings are written before the next batch starts, so a killed run
loses at most one batch and the next run skips what is already labeled. A feature whose explainer
fails stays unlabeled (or keeps its previous label under ``relabel``): nothing stored is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from steerlab.errors import InvalidInputError
from steerlab.features.explain.base import Explainer, negative_examples
from steerlab.features.schema import Example, Label
from steerlab.features.score import Scorer, score_report
from steerlab.features.search import update_label_embeddings


@dataclass
class LabelRunResult:
    attempted: int = 0
    labeled: int = 0
    failed: int = 0
    scored: int = 0
    report: dict = field(default_factory=dict)


def plan_targets(
    d_sae: int, existing: dict[int, Label], *, relabel: bool, rescore: bool, limit: int | None
) -> list[int]:
    """Indices to work on: unlabeled ones (all under ``relabel``; labeled ones under ``rescore``)."""
    if rescore:
        targets = sorted(existing)
    elif relabel:
        targets = list(range(d_sae))
    else:
        targets = [i for i in range(d_sae) if i not in existing]
    if limit is not None:
        if limit < 0:
            raise InvalidInputError(f"must be >= 0, got {limit}", field="limit")
        targets = targets[:limit]
    return targets


def background_examples(store, sae_id: str, d_sae: int, features: int = 64) -> list[Example]:
    """Non-firing contexts from features spread evenly over the SAE: the shared contrast set (only the
    choice half: the held-out scorer's random contexts never shape a label)."""
    step = max(1, d_sae // features)
    sample = store.get_features(sae_id, list(range(0, d_sae, step))[:features], with_examples=True)
    from steerlab.features.score_heldout import is_held_out

    return [e for f in sample for e in negative_examples(f) if not is_held_out(e)]


def label_features(
    store,
    sae_id: str,
    explainer: Explainer | None,
    scorer: Scorer | None = None,
    *,
    relabel: bool = False,
    rescore: bool = False,
    limit: int | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> LabelRunResult:
    """Label (or with ``rescore`` only re-score) the SAE's features; returns counts and the score report."""
    from tqdm import tqdm

    if explainer is None and not rescore:
        raise InvalidInputError("is required unless rescore=True", field="explainer")
    if batch_size < 1:
        raise InvalidInputError(f"must be >= 1, got {batch_size}", field="batch_size")
    d_sae = store.get_sae(sae_id).d_sae
    existing = store.labels(sae_id)
    targets = plan_targets(d_sae, existing, relabel=relabel, rescore=rescore, limit=limit)
    result = LabelRunResult()
    with tqdm(total=len(targets), unit="feat", desc="label", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(targets), batch_size):
            chunk = targets[start : start + batch_size]
            features = store.get_features(sae_id, chunk, with_examples=True)
            labels: Sequence[Label | None]
            if rescore:
                labels = [existing.get(f.index) for f in features]
            else:  # a scorer that holds examples out shows the explainer only the rest
                view = getattr(scorer, "choice_view", None)
                labels = explainer.explain([view(f) for f in features] if view else features)
            if scorer is not None:
                labels = scorer.score(features, labels)
            updates = {f.index: lab for f, lab in zip(features, labels) if lab is not None}
            if updates:
                store.set_labels(sae_id, updates)
                update_label_embeddings(store, sae_id, updates)
            result.attempted += len(chunk)
            result.labeled += len(updates)
            result.failed += len(chunk) - len(updates)
            result.scored += sum(1 for lab in updates.values() if lab.score is not None)
            bar.update(len(chunk))
    result.report = score_report(store.labels(sae_id), d_sae)
    return result
