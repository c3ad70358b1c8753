"""``Variant``: a base model plus feature edits and conditional scopes, as in the goodfire SDK.

    v = Variant("default", sae_id=sae_id)
    v.set(pirate, 0.5)                          # nudge: add 0.5 strong activations
    v.set(formal, 0.0, mode="pin")              # pin: hold at 0 (suppress)
    v.set_when(question > 0.4, {polite: 0.3})   # from the first token where it holds, on
    v.abort_when(toxicity > 0.8)                # raise InferenceAborted when it holds
    v.abort_when(classifier("jailbreak") > 0.9) # a classifier's score is a condition too (our extension)

Nudge and pin values are in steering units, Ember's range (``sae.units``: 0.5-1.0 visibly steers, about
1.0 the concept takes over; the SDK's guidance of about +0.5 to strengthen and -0.3 to suppress carries
over); mul values are plain factors. Conditions (``feature > 0.4``) read activations in reading units
(1.0 = a strong, typical activation of that feature). ``variant.controller`` is the Ember controller;
its ``json()`` is byte-for-byte the SDK's for the same variant (a condition on a classifier has no SDK
form: see ``conditions.ScoreComparison``).
``abort_when`` on a condition that reads a classifier also marks its scope ``abort``, so a server stops
decoding there itself (a guard works through any client, the OpenAI one included); on features alone
it keeps the SDK's JSON and the client aborts when the event is reported, as the SDK does.
Features may be indices (named with ``sae_id``), ``FeatureRef``s, goodfire SDK ``Feature``s or
feature-database records.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from steerlab.steering.conditions import ConditionGroup, ConditionLike, as_condition_group
from steerlab.steering.controller_json import MODES, Controller, Intervention, Scope
from steerlab.steering.errors import EditError, InferenceAborted
from steerlab.steering.refs import FeatureGroup, FeatureLike, FeatureRef, Labels, as_feature, as_group

if TYPE_CHECKING:
    from steerlab.models.loader import LoadedModel


@dataclass
class InferenceContext:
    """What an event handler sees (the SDK's shape): the prompt and the reply so far."""

    prompt: list[dict]
    response_so_far: str


Handler = Callable[[InferenceContext], object]


class _Edits:
    """Edits plus nested scopes: shared by a Variant and each of its scopes."""

    def __init__(self, root: Variant | None) -> None:
        self._root: Variant = root if root is not None else cast("Variant", self)  # None: self is the Variant
        self._edits: list[tuple[FeatureRef, float, str]] = []
        self.scopes: list[NestedScope] = []

    def feature(self, index: int, label: str | None = None) -> FeatureRef:
        """A reference to latent ``index`` of this variant's SAE (UUID from ``sae_id``)."""
        root = self._root
        ref = as_feature(index, root.sae_id, root.labels)
        return FeatureRef(ref.index, ref.uuid, label) if label is not None else ref

    @property
    def edits(self) -> list[tuple[FeatureRef, float, str]]:
        """``(feature, value, mode)`` in the order they will be applied."""
        return list(self._edits)

    def set(self, feature: FeatureLike, value: float | None = None, mode: str = "nudge") -> None:
        """Edit feature(s); ``value=None`` clears. ``set({f: v, ...})`` sets several at once.
        Setting a feature again replaces its edit in place (as the SDK does)."""
        sdk_edits = getattr(feature, "as_dict", None)  # the goodfire SDK's FeatureEdits
        if isinstance(feature, dict) or sdk_edits is not None:
            items = sdk_edits().items() if sdk_edits is not None else feature.items()
            planned = [(as_group(f, self._root.sae_id, self._root.labels), v) for f, v in items]
            for group, v in planned:  # validate everything before changing anything (None clears)
                for f in group:
                    if v is not None:
                        _check_edit(f, v, mode)
            for group, v in planned:
                self.set(group, v, mode)
            return
        group = as_group(feature, self._root.sae_id, self._root.labels)
        if value is None:
            self.clear(group)
            return
        value = _check_edit(group[0], value, mode) if len(group) else value
        for f in group:
            self._replace(f, value, mode)

    def _replace(self, ref: FeatureRef, value: float, mode: str) -> None:
        positions = [i for i, (f, _, _) in enumerate(self._edits) if f.index == ref.index]
        if not positions:
            self._edits.append((ref, value, mode))
            return
        self._edits[positions[0]] = (ref, value, mode)
        for i in reversed(positions[1:]):
            del self._edits[i]

    def clear(self, feature: FeatureLike) -> None:
        """Remove the edit(s) on these feature(s); features without an edit are ignored."""
        drop = set(as_group(feature, self._root.sae_id, self._root.labels).indices)
        self._edits = [e for e in self._edits if e[0].index not in drop]

    def reset(self) -> None:
        """Remove all edits and scopes."""
        self._edits = []
        self.scopes = []

    def set_when(self, condition: ConditionLike, values: FeatureLike, mode: str = "nudge") -> NestedScope:
        """From the first token where ``condition`` holds, apply ``values`` (a {feature: value} dict)
        as well. Returns the scope, whose own ``set_when`` nests a scope inside it."""
        scope = NestedScope(as_condition_group(condition), self._root)
        scope.set(values, mode=mode)
        self.scopes.append(scope)
        return scope

    def handle_when(self, condition: ConditionLike, handler: Handler, name: str | None = None) -> str:
        """Call ``handler(InferenceContext)`` once, when ``condition`` first holds. Returns the event
        name (reported to servers' clients in ``gf_event_names``)."""
        name = name or str(uuid.uuid4())
        self.scopes.append(NestedScope(as_condition_group(condition), self._root, event_name=name))
        self._root._handlers[name] = handler
        return name

    def abort_when(self, condition: ConditionLike, name: str | None = None) -> str:
        """Stop generation with ``InferenceAborted`` as soon as ``condition`` holds. A condition that
        reads a classifier (``classifier("jailbreak") > 0.9``) also stops it on the server."""
        group = as_condition_group(condition)
        event_name = name or str(uuid.uuid4())
        self.handle_when(group, _abort_handler(event_name), event_name)
        self._root.abort_events.add(event_name)
        if group.classifiers():
            self.scopes[-1].abort = True
        return event_name

    def _controller(self) -> Controller:
        return Controller(
            interventions=[Intervention(m, FeatureGroup([f]), v) for f, v, m in self._edits],
            scopes=[s._scope() for s in self.scopes],
        )


class Variant(_Edits):
    def __init__(
        self, base_model: str | LoadedModel = "default", *, sae_id: str | None = None, labels: Labels = None
    ) -> None:
        """``base_model``: a model name (or a loaded model). ``sae_id``: the SAE's identity
        (``features.identity``), used to give bare indices their UUIDs; without it a bare index names
        no SAE (empty UUID) and means that latent of whichever SAE runs the variant.
        ``labels``: a dict or callable index -> label for features given as bare indices."""
        super().__init__(None)
        self.base_model: str = base_model if isinstance(base_model, str) else base_model.name
        self.sae_id = sae_id
        self.labels = labels
        self._handlers: dict[str, Handler] = {}
        self.abort_events: set[str] = set()
        self.nonzero_strength_threshold: float | None = None
        self.min_nudge_entropy: float | None = None
        self.max_nudge_entropy: float | None = None

    def __repr__(self) -> str:
        return f"Variant({self.base_model!r}, edits={len(self._edits)}, scopes={len(self.scopes)})"

    @property
    def handlers(self) -> dict[str, Handler]:
        return dict(self._handlers)

    @property
    def controller(self) -> Controller:
        """The Ember controller for this variant; every nested controller shares its name, as in
        the SDK (whose names come from ``id()``; here from the content, so they are reproducible)."""
        return self.controller_named(None)

    def controller_named(self, name: str | None) -> Controller:
        ctrl = self._controller()
        ctrl.nonzero_strength_threshold = self.nonzero_strength_threshold
        ctrl.min_nudge_entropy = self.min_nudge_entropy
        ctrl.max_nudge_entropy = self.max_nudge_entropy
        _name_all(ctrl, name or ctrl.content_name())
        return ctrl

    def reset(self) -> None:
        super().reset()
        self._handlers.clear()
        self.abort_events.clear()

    @classmethod
    def from_controller(
        cls,
        controller: Controller | dict | str | bytes,
        base_model: str | LoadedModel = "default",
        sae_id: str | None = None,
    ) -> Variant:
        """A Variant that produces ``controller`` (a Controller, its dict or its JSON text).
        Event scopes come back without handlers: their names are still reported."""
        if not isinstance(controller, Controller):
            controller = Controller.from_json(controller)
        variant = cls(base_model, sae_id=sae_id)
        _fill(variant, controller)
        variant.nonzero_strength_threshold = controller.nonzero_strength_threshold
        variant.min_nudge_entropy = controller.min_nudge_entropy
        variant.max_nudge_entropy = controller.max_nudge_entropy
        return variant


class NestedScope(_Edits):
    """A conditional scope of a variant (what ``set_when`` returns)."""

    def __init__(
        self,
        condition: ConditionGroup,
        root: Variant,
        event_name: str | None = None,
        is_active: bool = False,
        abort: bool = False,
    ) -> None:
        super().__init__(root)
        self.condition = condition
        self.event_name = event_name
        self.is_active = is_active
        self.abort = abort
        """Stop decoding (on the server too) once the condition holds (``Scope.abort``)."""

    def __repr__(self) -> str:
        return f"NestedScope(edits={len(self._edits)}, scopes={len(self.scopes)}, event={self.event_name!r})"

    def _scope(self) -> Scope:
        return Scope(self.condition, self._controller(), self.is_active, self.event_name, self.abort)


def _abort_handler(event_name: str) -> Handler:
    def abort(context: InferenceContext) -> None:
        raise InferenceAborted(event_name, context.response_so_far)

    return abort


def _check_edit(ref: FeatureRef, value: object, mode: str) -> float:
    field = f"value for feature {ref.index}"
    if mode not in MODES:
        raise EditError(f"must be one of {', '.join(MODES)}, got {mode!r}", field="mode")
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise EditError(f"must be a finite number, got {value!r}", field=field)
    return float(value)


def _name_all(ctrl: Controller, name: str) -> None:
    ctrl.name = name
    for scope in ctrl.scopes:
        _name_all(scope.controller, name)


def _fill(target: _Edits, ctrl: Controller) -> None:
    for iv in ctrl.interventions:
        for f in iv.features:
            target._edits.append((f, float(iv.value), iv.mode))
    for scope in ctrl.scopes:
        nested = NestedScope(scope.condition, target._root, scope.event_name, scope.is_active, scope.abort)
        if scope.abort:  # raised in process as abort_when's are; the plan names an unnamed one "abort"
            name = scope.event_name or "abort"
            target._root._handlers[name] = _abort_handler(name)
            target._root.abort_events.add(name)
        _fill(nested, scope.controller)
        target.scopes.append(nested)
