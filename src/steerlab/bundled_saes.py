"""The SAE shipped inside the package for each bundled model (its feature database lies in the same folder).

Kept apart from ``steerlab.sae`` and free of torch: ``steerlab features search/show/export`` find the shipped
database through it without loading the model stack.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from steerlab.models.registry import DEFAULT_MODEL, canonical_name

BUNDLED_SAES = {DEFAULT_MODEL: "smollm2-135m-instruct"}


def bundled_sae_path(model_name: str) -> Path | None:
    folder = BUNDLED_SAES.get(canonical_name(model_name))
    if folder is None:
        return _base_model_sae(model_name)
    path = Path(str(resources.files("steerlab") / "assets" / "saes" / folder))
    return path if (path / "cfg.json").is_file() else None


def _base_model_sae(model_name: str) -> Path | None:
    """A model folder written by ``steerlab finetune`` names its base model (steerlab_source.json): the
    base's SAE is the one it was fine-tuned against, so it is the default SAE of the fine-tuned folder too."""
    import json

    source = Path(model_name).expanduser() / "steerlab_source.json"
    try:
        base = json.loads(source.read_text()).get("base_model") if source.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
    return bundled_sae_path(base) if isinstance(base, str) and base != model_name else None
