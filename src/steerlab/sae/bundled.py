"""Loading an SAE checked against the model it will read (the model's bundled SAE by default)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from steerlab.bundled_saes import bundled_sae_path
from steerlab.models.hooks import resolve_hookpoint
from steerlab.sae.storage import SAEFormatError

if TYPE_CHECKING:
    from steerlab.models.loader import LoadedModel
    from steerlab.sae.base import SAE


def load_sae_for(lm: LoadedModel, sae_path: str | Path | None = None, device: str | torch.device | None = None) -> SAE:
    """Load ``sae_path`` (or the model's bundled SAE) and check it fits the model. An SAE with no
    ``residual_norm`` in its cfg.json gets it measured on this model (the steering unit, ``sae.units``)."""
    from steerlab.sae.base import SAE

    if sae_path is None:
        sae_path = bundled_sae_path(lm.name)
        if sae_path is None:
            raise SAEFormatError(
                f"no SAE is bundled for model {lm.name!r}; pass --sae PATH (train one with 'steerlab sae train')"
            )
    sae = SAE.load(sae_path, device=device or lm.device)
    if sae.cfg.d_in != lm.d_model:
        raise SAEFormatError(
            f"SAE {sae_path} reads d_in={sae.cfg.d_in} but model {lm.name} has "
            f"d_model={lm.d_model}; use an SAE trained on this model"
        )
    where = sae.cfg.hookpoint or sae.cfg.layer
    if where is None:
        raise SAEFormatError(f"SAE {sae_path} names neither a hookpoint nor a layer; its cfg.json must give one")
    sae.cfg.hookpoint = resolve_hookpoint(lm.model, where)
    sae.requires_grad_(False)
    if sae.cfg.residual_norm is None:  # no steering calibration stored: measure what the unit is relative to
        from steerlab.sae.units import measure_residual_norm

        sae.cfg.residual_norm = measure_residual_norm(lm.model, lm.tokenizer, sae.cfg.hookpoint)
    return sae
