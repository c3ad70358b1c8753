"""The two units a feature's value is spoken in: how strongly it *fires* (reading) and how hard it is
*steered* (writing).

**Reading** (activations, inspect, conditions such as ``feature > 0.5``, thresholds, classifiers'
feature explanations): ``activation / feature_scale``, 1.0 = a strong, typical activation of that
feature (its 0.99 quantile of nonzero activations). Unchanged by this module.

**Steering** (nudge and pin values, AutoSteer's strengths, ``finetune --steer``): Ember's range. A
nudge of ``v`` moves the residual stream at the SAE's hookpoint by ``v * steering_push`` of its median
norm along the feature's decoder direction; pin ``v`` sets the feature's activation to the same amount
(so ``pin 1.0`` on a silent feature is ``nudge 1.0``). Calibrated on the bundled SAE by
``benchmarks/steering_units.py`` (``docs/bench_steering_units.json``): about 0.1 first changes 30
greedy tokens, 0.5-1.0 changes them visibly, around 1.0 the feature's concept takes over, and past
about 2 replies degenerate. The unit is per feature (through the decoder norm) but not through
``feature_scale``: how far the residual moves, relative to its own size, predicts what steering does
better than how strongly the feature fires naturally (the benchmark reports both spreads).

The calibration is two numbers in the SAE's ``cfg.json``: ``residual_norm`` (median norm of the
residual at the hookpoint over ``CALIBRATION_PROMPTS``, every token but the first) and
``steering_push`` (None: ``DEFAULT_STEERING_PUSH``). An SAE whose cfg.json lacks ``residual_norm``
(user-trained, imported, older) gets it measured when it is loaded for its model (``load_sae_for``,
a few short forwards). An SAE object that was never loaded for a model and has none (built in
memory) steers in reading units, as every SAE did before calibration.

The old unit (1.0 = ``feature_scale``, the reading unit) stays reachable: ``STEERLAB_STEERING_UNIT=
quantile``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

if TYPE_CHECKING:
    from steerlab.sae.base import SAE

DEFAULT_STEERING_PUSH = 0.5
"""How far nudge 1.0 moves the residual, as a fraction of its median norm (calibrated on the bundled
SAE; see ``docs/bench_steering_units.json``)."""

CALIBRATION_PROMPTS = (
    "Hello! How are you today?",
    "Can you explain how photosynthesis works?",
    "Write a haiku about the sea.",
    "What are some good habits for learning a new language?",
    "Summarize the plot of a famous novel in two sentences.",
    "How do I make a cup of tea?",
)
"""Chat prompts whose residual norm a steering unit is relative to."""

Unit = Literal["calibrated", "quantile"]


def steering_unit(sae: SAE, unit: Unit | None = None) -> Tensor:
    """``[d_sae]`` float32 on the CPU: the raw activation one steering unit adds (nudge) or sets (pin)
    for each feature. ``unit`` defaults to ``STEERLAB_STEERING_UNIT``; ``"quantile"``, or an SAE with
    no ``residual_norm``, gives ``feature_scale`` (the reading unit). Kept per SAE until its decoder or
    calibration changes; do not modify the returned tensor."""
    if unit is None:
        from steerlab.settings import get_settings

        unit = get_settings().steering_unit
    norm = sae.cfg.residual_norm
    if unit == "quantile" or norm is None:
        return sae.feature_scale.detach().float().cpu().clamp_min(1e-12)
    push = sae.cfg.steering_push if sae.cfg.steering_push is not None else DEFAULT_STEERING_PUSH
    w = sae.W_dec
    key = (float(norm), float(push), w.data_ptr(), w._version, w.device, w.dtype)
    cached = sae.__dict__.get("_steering_unit")  # every compiled controller asks; the norms cost ~5 ms
    if cached is not None and cached[0] == key:
        return cached[1]
    dec = w.detach().float().norm(dim=1).cpu().clamp_min(1e-12)
    out = push * float(norm) / dec
    sae.__dict__["_steering_unit"] = (key, out)
    return out


@torch.no_grad()
def measure_residual_norm(model: torch.nn.Module, tokenizer: Any, hookpoint: str) -> float:
    """Median norm of the residual at ``hookpoint`` over ``CALIBRATION_PROMPTS`` (chat-templated when the
    tokenizer has a template), every token but the first (the attention sink, far larger than the rest)."""
    from steerlab.models.hooks import forward_to_hookpoint

    device = next(model.parameters()).device
    norms = []
    for text in CALIBRATION_PROMPTS:
        if getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
        else:
            ids = tokenizer(text)["input_ids"]
        batch = torch.tensor([list(ids)], device=device)
        hidden = forward_to_hookpoint(model, batch, hookpoint)
        norms.append(hidden[0, 1:].float().norm(dim=-1).cpu())
    return round(float(torch.cat(norms).median()), 4)
