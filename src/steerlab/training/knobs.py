"""Knobs: SAE features acting on the residual stream at the SAE's layer, during training only.

- ablate (CAFT): the features' decoder directions, orthonormalised (QR), are projected out of the
  residual: the layers above cannot read them, so training cannot teach the model through them.
- steer (preventative steering): ``value x unit x W_dec[f]`` is added, in the steering unit that a
  nudge uses (``sae.units.steering_unit``: Ember's range, 1.0 ~ the concept takes over), so the model
  need not learn it.
- penalize: ``weight x`` the mean activation of the features (SAE encoder, in feature_scale units) over
  the real tokens, read from the residual as the model produces it (before the two edits above).

All three ride on one forward hook (``models.hooks.edit_residual``) that ``Knobs.attached`` installs
and removes: the model saved after training has no knob in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from steerlab.errors import InvalidInputError, UnknownFeatureError
from steerlab.models.hooks import edit_residual
from steerlab.sae.units import steering_unit

if TYPE_CHECKING:
    from torch import nn

    from steerlab.sae.base import SAE

Resolver = Callable[[str], list[int]]  # a search query -> feature indices


def resolve_features(item: str, d_sae: int, field: str, search: Resolver | None) -> list[int]:
    """``"123"`` -> [123]; anything else is a search query resolved through the feature database."""
    item = item.strip()
    if not item:
        raise InvalidInputError("empty feature", field=field, allowed="a feature index or a search query")
    if item.lstrip("-").isdigit():
        idx = int(item)
        if not 0 <= idx < d_sae:
            raise UnknownFeatureError(f"feature {idx} is out of range", field=field, allowed=f"0..{d_sae - 1}")
        return [idx]
    if search is None:
        raise InvalidInputError(
            f"{item!r} is not a feature index and this SAE has no feature database to search",
            field=field,
            allowed="feature indices, or --db with a feature database",
        )
    found = search(item)
    if not found:
        raise UnknownFeatureError(f"the search {item!r} finds no feature", field=field)
    return found


def parse_list(text: str | None, d_sae: int, field: str, search: Resolver | None) -> list[int]:
    """``F[,F...]`` (indices or queries) -> unique feature indices, in order."""
    out: list[int] = []
    for item in (text or "").split(",") if text else []:
        out += [f for f in resolve_features(item, d_sae, field, search) if f not in out]
    return out


def parse_values(items: list[str], d_sae: int, field: str, search: Resolver | None) -> dict[int, float]:
    """``F=VALUE`` entries (F an index or a query; a query gives each feature it finds the value)."""
    out: dict[int, float] = {}
    for text in items:
        key, sep, value = text.rpartition("=")
        try:
            number = float(value)
            if not sep or not torch.isfinite(torch.tensor(number)):
                raise ValueError
        except ValueError:
            raise InvalidInputError(f"{text!r}: expected F=VALUE with a finite number", field=field) from None
        for f in resolve_features(key, d_sae, field, search):
            out[f] = number
    return out


@dataclass
class Knobs:
    sae: SAE
    ablate: list[int] = field(default_factory=list)
    steer: dict[int, float] = field(default_factory=dict)
    penalize: dict[int, float] = field(default_factory=dict)
    last_input: torch.Tensor | None = field(default=None, init=False, repr=False)
    """The residual at the SAE's layer as the model produced it in the last forward (before the edits)."""

    def __post_init__(self) -> None:
        d_sae = self.sae.cfg.d_sae
        for f in [*self.ablate, *self.steer, *self.penalize]:
            if not 0 <= f < d_sae:
                raise UnknownFeatureError(f"feature {f} is out of range", field="feature", allowed=f"0..{d_sae - 1}")
        w = self.sae.W_dec.detach().float()
        self.basis: torch.Tensor | None = None
        if self.ablate:
            q, r = torch.linalg.qr(w[self.ablate].T)  # [d_model, k], orthonormal columns
            keep = r.diagonal().abs() > 1e-6 * r.diagonal().abs().max()  # drop directions already spanned
            self.basis = q[:, keep]
        self.shift: torch.Tensor | None = None
        if self.steer:
            idx = list(self.steer)
            coefs = torch.tensor([self.steer[f] for f in idx]) * steering_unit(self.sae)[idx]
            self.shift = coefs.to(w.device) @ w[idx]

    @property
    def active(self) -> bool:
        return bool(self.ablate or self.steer or self.penalize)

    @property
    def hookpoint(self) -> str:
        hookpoint = self.sae.cfg.hookpoint
        assert hookpoint is not None
        return hookpoint

    def edit(self, h: torch.Tensor) -> torch.Tensor:
        self.last_input = h
        out = h
        if self.basis is not None:
            q = self.basis.to(h.device, h.dtype)
            out = out - (out @ q) @ q.T
        if self.shift is not None:
            out = out + self.shift.to(h.device, h.dtype)
        return out

    def penalty(self, mask: torch.Tensor) -> torch.Tensor | None:
        """``sum_f weight_f x mean activation of f`` over the real tokens of the last forward."""
        if not self.penalize or self.last_input is None:
            return None
        idx = list(self.penalize)
        acts = feature_activations(self.sae, self.last_input, idx)  # [b, s, k]
        m = mask.to(acts.dtype)[..., None]
        mean = (acts * m).sum((0, 1)) / m.sum().clamp_min(1)
        weights = torch.tensor([self.penalize[f] for f in idx], device=mean.device, dtype=mean.dtype)
        return (weights * mean).sum()

    @contextmanager
    def attached(self, model: nn.Module) -> Iterator[None]:
        """The knobs on ``model``'s forwards for the block; removed after it, even on an error."""
        if not self.active:
            yield
            return
        try:
            with edit_residual(model, self.hookpoint, self.edit):
                yield
        finally:
            self.last_input = None


def feature_activations(sae: SAE, h: torch.Tensor, features: list[int]) -> torch.Tensor:
    """Activations of ``features`` for hidden states ``h`` [..., d_model], in feature_scale units (1.0 = strong)."""
    codes = sae.encode(h.to(sae.W_enc.dtype))[..., features]
    return codes / sae.feature_scale[features].clamp_min(1e-12)
