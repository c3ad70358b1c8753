"""Inspect: which features a conversation activates, token by token and in aggregate.

Every activation is reported twice and the field names say which: ``*_units`` is per-feature units
(raw / feature_scale: 1.0 = a strong, typical activation of that feature, the units steering uses)
and ``*_raw`` is the SAE's own output. Through a variant, edited features show their edited values
(a pin shows the pinned value) and scopes turn on token by token as they would in generation.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from steerlab.analysis.codes import conversation_codes, labeler
from steerlab.models.chunked import Hold
from steerlab.steering.errors import SteeringError, UnknownFeatureError

AGGREGATIONS = ("count", "mean", "max", "sum")
"""count: tokens on which the feature fired; mean: average over those tokens; max; sum."""


@dataclass
class FeatureActivation:
    index: int
    label: str
    act_units: float
    act_raw: float
    count: int = 1
    """Tokens this value covers: 1 for a single token; for an aggregate, the tokens it fired on."""


@dataclass
class TokenFeatures:
    position: int
    token: str
    token_id: int
    features: list[FeatureActivation]


class Inspection:
    """The result of ``inspect``: per-token codes plus ways to read them."""

    def __init__(
        self,
        tokens: list[str],
        token_ids: list[int],
        codes: torch.Tensor,
        feature_scale: torch.Tensor,
        labels=None,
        event_names: list[str] | None = None,
    ):
        self.tokens, self.token_ids = tokens, token_ids
        self.codes_raw = codes  # [T, d_sae]
        self.scale = feature_scale.float().clamp_min(1e-12).to(codes.device)
        self.codes_units = codes / self.scale
        self.label = labeler(labels)
        self.event_names = event_names or []

    def __len__(self) -> int:
        return len(self.tokens)

    def _activation(self, index: int, units: float, raw: float, count: int = 1) -> FeatureActivation:
        return FeatureActivation(index, self.label(index), units, raw, count)

    def token(self, position: int, k: int | None = 5) -> list[FeatureActivation]:
        """The features active at one token, strongest (in units) first."""
        units = self.codes_units[position]
        nonzero = units.nonzero().flatten()
        order = nonzero[units[nonzero].argsort(descending=True)][:k]
        return [self._activation(i, float(units[i]), float(self.codes_raw[position, i])) for i in order.tolist()]

    def per_token(self, k: int | None = None, features: list[int] | None = None) -> list[TokenFeatures]:
        """Every token with its active features (all, the top ``k``, or only ``features``)."""
        keep = None if features is None else set(self._check(features))
        out = []
        for t, (tok, tid) in enumerate(zip(self.tokens, self.token_ids)):
            acts = self.token(t, None)
            acts = [a for a in acts if keep is None or a.index in keep][:k]
            out.append(TokenFeatures(t, tok, tid, acts))
        return out

    def aggregate(self, by: str = "count", min_units: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per feature ``(value_units [d_sae], value_raw [d_sae], count [d_sae])`` over the tokens.
        A feature "fires" on a token when its activation exceeds ``min_units``."""
        by = "count" if by == "frequency" else by  # the SDK's name for count
        if by not in AGGREGATIONS:
            raise SteeringError(f"must be one of {', '.join(AGGREGATIONS)}, got {by!r}", field="aggregate_by")
        fired = self.codes_units > min_units
        count = fired.sum(0)
        units, raw = self.codes_units * fired, self.codes_raw * fired
        if by == "count":
            return count.float(), count.float(), count
        if by == "max":
            return units.max(0).values, raw.max(0).values, count
        total_u, total_r = units.sum(0), raw.sum(0)
        if by == "sum":
            return total_u, total_r, count
        denom = count.clamp_min(1).float()
        return total_u / denom, total_r / denom, count

    def top(self, k: int = 5, by: str = "count", features: list[int] | None = None) -> list[FeatureActivation]:
        """The ``k`` features with the largest aggregate (``by``), each with its aggregate value;
        count ties are broken by summed activation. ``features`` restricts the candidates."""
        units, raw, count = self.aggregate(by)
        candidates = torch.arange(len(units)) if features is None else torch.tensor(self._check(features))
        candidates = candidates[count[candidates] > 0] if features is None else candidates
        tie_break = self.aggregate("sum")[0][candidates]
        candidates = candidates[tie_break.argsort(descending=True, stable=True)]
        order = candidates[units[candidates].argsort(descending=True, stable=True)][:k]
        return [self._activation(i, float(units[i]), float(raw[i]), int(count[i])) for i in order.tolist()]

    def matrix(self, features: list[int] | None = None, units: bool = True) -> np.ndarray:
        """Dense ``[tokens, len(features)]`` activations (all features when None), per-feature units
        unless ``units=False``."""
        codes = self.codes_units if units else self.codes_raw
        if features is not None:
            codes = codes[:, self._check(features)]
        return codes.cpu().numpy()

    def _check(self, features: list[int]) -> list[int]:
        d_sae = self.codes_raw.shape[1]
        for i, f in enumerate(features):
            if isinstance(f, bool) or not isinstance(f, int) or not 0 <= f < d_sae:
                raise UnknownFeatureError(
                    f"must be a feature index in 0..{d_sae - 1}, got {f!r}", field=f"features[{i}]"
                )
        return list(features)


def inspect(
    lm,
    sae,
    messages,
    variant=None,
    *,
    labels=None,
    sae_id: str | None = None,
    chunk_tokens: int | None = None,
    hold: Hold = nullcontext,
) -> Inspection:
    """Run ``messages`` (the whole conversation, every message closed) to the SAE's hookpoint, through
    ``variant`` if given, and return the per-token codes. ``labels``: dict or callable index -> label;
    ``sae_id``: the SAE's identity (a variant naming another SAE's features is refused);
    ``chunk_tokens``/``hold``: run it in pieces, each inside ``hold()`` (``codes.conversation_codes``)."""
    got = conversation_codes(lm, sae, messages, variant, sae_id=sae_id, chunk_tokens=chunk_tokens, hold=hold)
    return Inspection(got.tokens, got.token_ids, got.codes, sae.feature_scale, labels, got.event_names)
