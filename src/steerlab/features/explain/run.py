"""Labeling a whole SAE in a store: explain, score, write, in resumable batches.

Each batch's labels and label embeddings are written before the next batch starts, so a killed run
loses at most one batch and the next run skips what is already labeled. A feature whose explainer
fails stays unlabeled (or keeps its previous label under ``relabel``): nothing stored is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from steerlab.errors import InvalidInputError
from steerlab.features.explain.base import Explainer, negative_examples
from steerlab.features.schema import Example, Feature, Label
from steerlab.features.score import Scorer, score_report
from steerlab.features.search import update_label_embeddings

Labeler = Callable[[Iterator[list[Feature]]], Iterable[tuple[list[Feature], Sequence[Label | None]]]]


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


def label_chunk(
    features: list[Feature], explainer: Explainer | None, scorer: Scorer | None, existing: dict[int, Label] | None
) -> Sequence[Label | None]:
    """Labels of one chunk of features (``existing`` given: re-score those labels instead of explaining)."""
    labels: Sequence[Label | None]
    if existing is not None:
        labels = [existing.get(f.index) for f in features]
    else:  # a scorer that holds examples out shows the explainer only the rest
        assert explainer is not None
        view = getattr(scorer, "choice_view", None)
        labels = explainer.explain([view(f) for f in features] if view else features)
    if scorer is not None:
        labels = scorer.score(features, labels)
    return labels


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
    labeler: Labeler | None = None,
) -> LabelRunResult:
    """Label (or with ``rescore`` only re-score) the SAE's features; returns counts and the score report.
    ``labeler`` maps the chunks of features to ``(chunk, labels)`` in order (default: ``label_chunk`` here;
    ``cluster/jobs.py`` runs it on Ray, ``existing`` labels travel with it under ``rescore``); each chunk is
    written as it comes back."""
    from tqdm import tqdm

    if explainer is None and not rescore and labeler is None:
        raise InvalidInputError("is required unless rescore=True (or a labeler brings its own)", field="explainer")
    if batch_size < 1:
        raise InvalidInputError(f"must be >= 1, got {batch_size}", field="batch_size")
    d_sae = store.get_sae(sae_id).d_sae
    existing = store.labels(sae_id)
    targets = plan_targets(d_sae, existing, relabel=relabel, rescore=rescore, limit=limit)
    result = LabelRunResult()

    def chunks() -> Iterator[list[Feature]]:
        for start in range(0, len(targets), batch_size):
            yield store.get_features(sae_id, targets[start : start + batch_size], with_examples=True)

    def here(feature_chunks: Iterable[list[Feature]]) -> Iterator[tuple[list[Feature], Sequence[Label | None]]]:
        for features in feature_chunks:
            yield features, label_chunk(features, explainer, scorer, existing if rescore else None)

    with tqdm(total=len(targets), unit="feat", desc="label", disable=not progress, dynamic_ncols=True) as bar:
        for features, labels in (labeler or here)(chunks()):
            updates = {f.index: lab for f, lab in zip(features, labels) if lab is not None}
            if updates:
                store.set_labels(sae_id, updates)
                update_label_embeddings(store, sae_id, updates)
            result.attempted += len(features)
            result.labeled += len(updates)
            result.failed += len(features) - len(updates)
            result.scored += sum(1 for lab in updates.values() if lab.score is not None)
            bar.update(len(features))
    result.report = score_report(store.labels(sae_id), d_sae)
    return result
