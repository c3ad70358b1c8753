"""Ember response bodies built from analysis results: the wire format lives here, not in ``analysis/``.

Analysis returns plain results (dataclasses, tensors, ``FeatureRef``s); each function below shapes
one of them the way the goodfire SDK reads the matching Ember route's response.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from steerlab.features.schema import feature_uuid

if TYPE_CHECKING:  # routes import analysis only when a request needs it; so does this module
    from steerlab.analysis.attribution import AttributionResult
    from steerlab.analysis.autosteer import AutoSteerResult
    from steerlab.analysis.autosteer_conditional import AutoConditionalResult
    from steerlab.analysis.stimulus import ContrastiveStimulus


def attribution_response(result: AttributionResult, sae_id: str, k: int = 10) -> dict:
    """``attributions/compute-logit-attribution``: the features to ablate (largest summed attribution
    first), each with the positions it fired on and its strength there (per-feature units)."""
    to_ablate = [
        {
            "id": feature_uuid(sae_id, index),
            "value": value,
            "tokens": [{"index": p, "activation_strength": strength} for p, strength in result.firing(index)],
        }
        for index, _, value in result.by_feature(k)
    ]
    return {"to_ablate": to_ablate, "num_input_tokens": result.num_input_tokens}


def auto_edits_response(result: AutoSteerResult) -> dict:
    """``features/auto-edits``: ``{"edits": [[feature, strength], ...]}`` (empty when nothing helped)."""
    return {
        "edits": [
            [{"id": str(uuid.UUID(f.uuid)), "label": f.label, "index_in_sae": f.index}, strength]
            for f, strength in result.edits
        ]
    }


def auto_conditional_response(result: AutoConditionalResult) -> dict:
    """``features/auto-conditional``: ``{"conditional": ConditionalGroup}``."""
    return {"conditional": result.condition.json()}


def contrastive_dataset_response(stimulus: ContrastiveStimulus) -> list[list[list[dict]]]:
    """``attributions/generate-contrastive-dataset``: ``[dataset_1, dataset_2]``."""
    return [stimulus.dataset_1, stimulus.dataset_2]
