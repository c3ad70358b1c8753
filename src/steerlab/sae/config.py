"""What an SAE *is*: its architecture, its size, and where in which model it reads.

Training knobs (learning rate, batch size, ...) live in ``train.TrainConfig``; the only
training-related fields here are the ones that define the objective of a variant (its
sparsity penalty), because a checkpoint must say how it was meant to be trained.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from steerlab.errors import InvalidInputError

DTYPES = ("float32", "bfloat16", "float16", "float64")


@dataclass
class SAEConfig:
    """Shape and objective of a sparse autoencoder (stored as ``cfg.json`` next to its weights)."""

    d_in: int
    """Width of the activations the SAE reads (the model's d_model for residual-stream SAEs)."""

    d_sae: int
    """Number of latents (features). 16-64x d_in is typical."""

    architecture: str = "topk"
    """Activation / sparsity mechanism: topk (default), batchtopk, jumprelu or relu."""

    k: int = 64
    """topk: latents kept per token. batchtopk: average latents per token over a batch."""

    l1_coefficient: float = 0.02
    """relu: weight of the L1 penalty on decoder-norm-weighted codes, relative to FVU.
    The penalty is divided by the batch's RMS input norm so the coefficient is scale-free."""

    l0_coefficient: float = 2e-3
    """jumprelu: weight of the (straight-through) L0 penalty, in FVU per active latent."""

    jumprelu_init_threshold: float = 0.5
    """jumprelu: initial threshold, in the units of normalized pre-activations
    (about N(0, 1) at init when ``normalize_input`` is on)."""

    jumprelu_bandwidth: float = 0.05
    """jumprelu: width of the rectangle kernel used for the threshold's pseudo-derivative."""

    normalize_input: bool = True
    """Train on activations rescaled to mean squared norm d_in, so learning rates and the
    jumprelu/relu constants transfer across models and layers. The scale is folded into the
    weights when training ends: a saved SAE always reads raw activations."""

    model_name: str = ""
    """The model the SAE was trained on, e.g. "HuggingFaceTB/SmolLM2-135M-Instruct"."""

    hookpoint: str = ""
    """HF module name whose *output* the SAE reads, e.g. "model.layers.18" (the residual
    stream after block 18)."""

    layer: int | None = None
    """Layer index of ``hookpoint`` when it is a decoder block; None otherwise."""

    dtype: str = "float32"
    """Parameter dtype to create the SAE in (feature_scale is always float32)."""

    residual_norm: float | None = None
    """Median norm of the residual at ``hookpoint`` over ``units.CALIBRATION_PROMPTS``: what a steering
    unit is relative to (``units.steering_unit``). None: measured when the SAE is loaded for its model."""

    steering_push: float | None = None
    """How far nudge 1.0 moves the residual, as a fraction of ``residual_norm``; None: the default
    calibrated on the bundled SAE (``units.DEFAULT_STEERING_PUSH``)."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form provenance (training run id, data set, ...). Not interpreted."""

    def __post_init__(self) -> None:
        from steerlab.sae.registry import get_sae_class

        get_sae_class(self.architecture)  # unknown name -> ValueError listing the allowed ones
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"must be a positive integer, got {value!r}", field=name)
        if self.architecture in ("topk", "batchtopk") and not 1 <= self.k <= self.d_sae:
            raise InvalidInputError(f"must be in [1, d_sae={self.d_sae}], got {self.k}", field="k")
        if self.dtype not in DTYPES:
            raise InvalidInputError(f"unknown {self.dtype!r}", field="dtype", allowed=", ".join(DTYPES))
        if self.jumprelu_bandwidth <= 0:
            raise InvalidInputError(f"must be > 0, got {self.jumprelu_bandwidth}", field="jumprelu_bandwidth")
        for name in ("residual_norm", "steering_push"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf")
            ):
                raise InvalidInputError(f"must be a positive number or null, got {value!r}", field=name)
        if self.l1_coefficient < 0 or self.l0_coefficient < 0:
            raise InvalidInputError("l1_coefficient and l0_coefficient must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAEConfig:
        """Build from a dict; unknown keys are an error (a typo should not be silently ignored)."""
        if not isinstance(data, dict):
            raise InvalidInputError(f"SAE config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown SAE config key(s): {', '.join(unknown)}", allowed=", ".join(sorted(known))
            )
        missing = sorted(name for name in ("d_in", "d_sae") if name not in data)
        if missing:
            raise InvalidInputError(f"SAE config is missing required key(s): {', '.join(missing)}")
        return cls(**data)
