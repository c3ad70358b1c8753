"""Compile one Ember controller against one SAE into a plan: flat lists ready to become tensors.

A plan is immutable and shared; the mutable part of a running sequence (which scopes are on, whether
nudges are paused) lives in ``SteeringState``. ``SteeringBatch`` stacks many plans, one per batch
row, so rows with different controllers share a forward pass.

Every layer of edits (the controller's own interventions, then each scope's, in order) becomes, per
edited feature, an affine map ``target = a * current + b`` in raw SAE units: nudge adds
``v * unit``, pin sets ``a = 0, b = v * unit``, mul multiplies both ``a`` and ``b``, composed in the
order the interventions are listed. ``unit`` is the feature's steering unit (``sae.units.steering_unit``:
Ember's range, 1.0 ~ the concept takes over); conditions read activations in reading units
(``raw / feature_scale``, 1.0 = a strong, typical activation). A second set of maps omits the nudges; it is
used while the entropy guard pauses nudges (see ``controller_json``).

A classifier condition compiles to a ``ProbeLeaf`` over one of the plan's ``probes`` (each classifier
once, however many conditions read it); the names are resolved to ``LinearProbe``s by the caller
(the Lab), since steering sits below the classifiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from steerlab.sae.units import steering_unit
from steerlab.steering.conditions import Comparison, ConditionGroup, ScoreComparison
from steerlab.steering.controller_json import Controller, Intervention
from steerlab.steering.edits import FeatureEdit
from steerlab.steering.errors import ControllerError, UnknownFeatureError
from steerlab.steering.refs import FeatureGroup, FeatureRef

if TYPE_CHECKING:
    from steerlab.sae.base import SAE
    from steerlab.steering.probes import LinearProbe

OP_CODES = {op: i for i, op in enumerate((">", "<", ">=", "<=", "==", "!="))}


@dataclass(frozen=True)
class Side:
    """Features read as their strongest member. Each activation is put in per-feature units
    (``raw / feature_scale``), zeroed at or below the threshold, then multiplied by the sender's
    ``max_activation_strength``."""

    indices: tuple[int, ...]
    inv_scales: tuple[float, ...]
    strengths: tuple[float, ...]


@dataclass(frozen=True)
class Leaf:
    left: Side
    op: int
    right: Side | float
    threshold: float
    """Per-feature units; activations at or below it read as 0 (``nonzero_strength_threshold``)."""


@dataclass(frozen=True)
class ProbeLeaf:
    probe: int
    """Index into the plan's ``probes``."""
    op: int
    value: float
    """A probability the probe's score is compared with."""


@dataclass(frozen=True)
class Group:
    join_and: bool
    children: tuple[int, ...]
    """Node ids: ``i >= 0`` is leaf i, ``-1 - j`` is group j (groups are listed children first)."""
    height: int


@dataclass(frozen=True)
class ScopePlan:
    parent: int
    """Slot of the enclosing scope, -1 at top level (a parent's slot is always lower)."""
    root: int
    """Group id of the condition."""
    event_name: str | None
    starts_active: bool
    abort: bool = False
    """Decoding stops once it turns on (its event is ``event_name``, or ``"abort"``)."""


@dataclass(frozen=True)
class ControllerPlan:
    features: tuple[int, ...]
    """Edited feature indices (columns of ``coefs``)."""
    coefs: tuple[tuple[tuple[tuple[float, ...], ...], ...], ...]
    """[1 + n_scopes][nudges on/off][a, b][feature]."""
    scopes: tuple[ScopePlan, ...]
    leaves: tuple[Leaf | ProbeLeaf, ...]
    groups: tuple[Group, ...]
    min_entropy: float | None
    max_entropy: float | None
    probes: tuple[LinearProbe, ...] = ()
    """The classifiers its conditions read, resolved (``ProbeLeaf.probe`` indexes them)."""

    @property
    def abort_events(self) -> frozenset[str]:
        """Event names of the scopes that stop decoding."""
        return frozenset(s.event_name for s in self.scopes if s.abort and s.event_name is not None)

    @property
    def is_noop(self) -> bool:
        return not self.features and not self.scopes

    @property
    def needs_codes(self) -> bool:
        """False when every edit is a plain nudge and nothing is conditional: no SAE encode needed."""
        return bool(self.scopes) or any(a != 1.0 for layer in self.coefs for a in layer[0][0])


def compile_controller(
    controller: Controller,
    sae: SAE,
    sae_id: str | None = None,
    probes: Mapping[str, LinearProbe] | None = None,
) -> ControllerPlan:
    """Validate every feature against the SAE (errors name the JSON path), then flatten. With
    ``sae_id``, a non-empty feature UUID must also be that SAE's UUID for its index (hex or dashed),
    so a feature picked on another SAE is refused instead of silently meaning something else.
    ``probes``: the classifiers that conditions may name, resolved (a name not there is refused)."""
    probes = probes or {}
    for path, name in controller.iter_classifiers():
        if name not in probes:
            known = ", ".join(sorted(probes)) or "none here (classifier conditions run in chat and generation)"
            raise ControllerError(f"no classifier {name!r}", field=path, allowed=known)
    d_sae = sae.cfg.d_sae
    for path, ref in controller.iter_features():
        if ref.index >= d_sae:
            raise UnknownFeatureError(
                f"feature index must be in 0..{d_sae - 1}, got {ref.index}", field=f"{path}.index_in_sae"
            )
        if sae_id is not None and ref.uuid and ref.uuid.replace("-", "") != FeatureRef.of(ref.index, sae_id).uuid:
            raise UnknownFeatureError(f"{ref.uuid} is not feature {ref.index} of SAE {sae_id!r}", field=f"{path}.uuid")
    scale = sae.feature_scale.detach().float().clamp_min(1e-12).cpu().tolist()
    builder = _Builder(scale, steering_unit(sae).tolist(), probes)
    builder.add_layer(controller)
    builder.add_scopes(controller, parent=-1, threshold=controller.nonzero_strength_threshold)
    return builder.finish(controller)


def edits_controller(edits: Sequence[FeatureEdit]) -> Controller:
    """Plain feature edits (``--feature IDX=VALUE[:MODE]``) as a controller: one intervention each, in
    order, naming features by index only (valid on whichever SAE runs it)."""
    return Controller(
        interventions=[Intervention(e.mode, FeatureGroup([FeatureRef(e.index, "")]), e.value) for e in edits]
    )


def compile_edits(edits: Sequence[FeatureEdit], sae: SAE) -> ControllerPlan:
    """Plain feature edits, validated against the SAE, as a plan (the same arithmetic as any controller)."""
    d_sae = sae.cfg.d_sae
    return compile_controller(edits_controller([e.validate(d_sae) for e in edits]), sae)


class _Builder:
    def __init__(self, scale: list[float], unit: list[float], probes: Mapping[str, LinearProbe]) -> None:
        self.scale = scale
        """Reading unit per feature (conditions)."""
        self.unit = unit
        """Steering unit per feature (nudge and pin values)."""
        self.known = probes
        self.layers: list[list[tuple[int, str, float]]] = []
        self.scopes: list[ScopePlan] = []
        self.leaves: list[Leaf | ProbeLeaf] = []
        self.groups: list[Group] = []
        self.probes: list[LinearProbe] = []

    def add_layer(self, ctrl: Controller) -> None:
        ops = []
        for iv in ctrl.interventions:
            for f in iv.features:
                value = float(iv.value) if iv.mode == "mul" else iv.value / f.max_activation_strength
                ops.append((f.index, iv.mode, float(value)))
        self.layers.append(ops)

    def add_scopes(self, ctrl: Controller, parent: int, threshold: float | None) -> None:
        for scope in ctrl.scopes:
            inner = scope.controller.nonzero_strength_threshold
            thr = max(float(threshold or 0.0), 0.0)
            root = self.add_group(scope.condition, thr)
            slot = len(self.scopes)
            event = scope.event_name if scope.event_name is not None or not scope.abort else "abort"
            self.scopes.append(ScopePlan(parent, root, event, scope.is_active, scope.abort))
            self.add_layer(scope.controller)
            self.add_scopes(scope.controller, slot, threshold if inner is None else inner)

    def side(self, group: FeatureGroup) -> Side:
        return Side(
            tuple(f.index for f in group),
            tuple(1.0 / self.scale[f.index] for f in group),
            tuple(float(f.max_activation_strength) for f in group),
        )

    def add_group(self, cond: ConditionGroup, threshold: float) -> int:
        children, height = [], 1
        for item in cond.items:
            if isinstance(item, ConditionGroup):
                gid = self.add_group(item, threshold)
                children.append(-1 - gid)
                height = max(height, self.groups[gid].height + 1)
            elif isinstance(item, ScoreComparison):
                children.append(self.add_probe_leaf(item))
            else:
                children.append(self.add_leaf(item, threshold))
        self.groups.append(Group(cond.op == "AND", tuple(children), height))
        return len(self.groups) - 1

    def add_leaf(self, cmp: Comparison, threshold: float) -> int:
        right = self.side(cmp.right) if isinstance(cmp.right, FeatureGroup) else float(cmp.right)
        self.leaves.append(Leaf(self.side(cmp.left), OP_CODES[cmp.op], right, threshold))
        return len(self.leaves) - 1

    def add_probe_leaf(self, cmp: ScoreComparison) -> int:
        probe = self.known[cmp.classifier]
        if probe not in self.probes:
            self.probes.append(probe)
        self.leaves.append(ProbeLeaf(self.probes.index(probe), OP_CODES[cmp.op], float(cmp.right)))
        return len(self.leaves) - 1

    def finish(self, ctrl: Controller) -> ControllerPlan:
        features = tuple(sorted({i for ops in self.layers for i, _, _ in ops}))
        column = {f: c for c, f in enumerate(features)}
        coefs = []
        for ops in self.layers:
            per_gate = []
            for with_nudges in (True, False):
                a, b = [1.0] * len(features), [0.0] * len(features)
                for idx, mode, value in ops:
                    c, raw = column[idx], value * self.unit[idx]
                    if mode == "nudge" and with_nudges:
                        b[c] += raw
                    elif mode == "pin":
                        a[c], b[c] = 0.0, raw
                    elif mode == "mul":
                        a[c], b[c] = a[c] * value, b[c] * value
                per_gate.append((tuple(a), tuple(b)))
            coefs.append(tuple(per_gate))

        def bound(x: float | None) -> float | None:
            return None if x is None else float(x)

        return ControllerPlan(
            features,
            tuple(coefs),
            tuple(self.scopes),
            tuple(self.leaves),
            tuple(self.groups),
            bound(ctrl.min_nudge_entropy),
            bound(ctrl.max_nudge_entropy),
            tuple(self.probes),
        )
