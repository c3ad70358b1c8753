"""Apply feature edits inside the model, error-preserving.

The residual ``h`` becomes ``h + decode(f_edited) - decode(f)``: only the difference of two decodes
is added, so the SAE's reconstruction error never reaches the model, and an edit that leaves every
feature at its current value changes nothing. Edits apply at every position (prompt and generated).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from steerlab.steering.edits import FeatureEdit


def feature_delta(sae, h: torch.Tensor, edits: Sequence[FeatureEdit]) -> torch.Tensor:
    """``decode(f_edited) - decode(f)`` for hidden states ``h`` [..., d_model]."""
    d_sae = sae.cfg.d_sae
    edits = [e.validate(d_sae) for e in edits]
    idx = torch.tensor([e.index for e in edits], device=h.device)
    w_dec = sae.W_dec[idx].to(h.dtype)  # [n_edits, d_model]
    scale = sae.feature_scale[idx].to(h.dtype)
    values = torch.tensor([e.value for e in edits], device=h.device, dtype=h.dtype) * scale
    if all(e.mode == "nudge" for e in edits):
        return (values @ w_dec).expand_as(h)  # constant shift: no encode needed
    f = sae.encode(h.to(sae.W_enc.dtype)).to(h.dtype)[..., idx]  # [..., n_edits]
    target = f.clone()
    for j, e in enumerate(edits):
        if e.mode == "nudge":
            target[..., j] = f[..., j] + values[j]
        elif e.mode == "pin":
            target[..., j] = values[j]
        else:  # mul: the value is a plain factor, not in feature units
            target[..., j] = f[..., j] * e.value
    return (target - f) @ w_dec


def make_editor(sae, edits: Sequence[FeatureEdit]) -> Callable[[torch.Tensor], torch.Tensor]:
    edits = list(edits)

    def editor(h: torch.Tensor) -> torch.Tensor:
        return h + feature_delta(sae, h, edits) if edits else h

    return editor
