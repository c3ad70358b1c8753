"""Accept any form of steering a caller may hold, and attach it to a model for one run.

A variant argument may be a ``Variant`` (edits + handlers), a ``Controller``, controller JSON as a
dict or text, a goodfire SDK ``Variant`` (anything with ``.controller.json()``; its handlers run
too, so its ``abort_when`` raises the SDK's own exception), a plain model name, or None. Everything
is parsed and checked against the SAE before the model runs, so nothing is half-applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from steerlab.models.hooks import edit_residual
from steerlab.steering.batch import SteeringBatch
from steerlab.steering.controller_json import Controller
from steerlab.steering.errors import SteeringError
from steerlab.steering.plan import ControllerPlan, compile_controller
from steerlab.steering.variant import Variant

if TYPE_CHECKING:
    from torch import nn

    from steerlab.sae.base import SAE
    from steerlab.steering.probes import LinearProbe

VariantLike = Any
"""What a caller may steer with: None or a plain model name (no steering), a Variant, a Controller, its JSON
(dict, str or bytes), or a goodfire SDK variant (duck-typed)."""


@dataclass
class Steering:
    controller: Controller
    handlers: dict = field(default_factory=dict)
    abort_events: frozenset[str] = frozenset()

    @classmethod
    def of(cls, variant: VariantLike) -> Steering | None:
        if variant is None or isinstance(variant, str) and not variant.lstrip().startswith("{"):
            return None  # a plain model name: no steering
        if isinstance(variant, Variant):
            return cls(variant.controller, variant.handlers, frozenset(variant.abort_events))
        if isinstance(variant, Controller):
            return cls(variant)
        if isinstance(variant, (dict, str, bytes)):
            return cls(Controller.from_json(variant))
        sdk_controller = getattr(variant, "controller", None)
        if sdk_controller is not None and hasattr(sdk_controller, "json"):  # the SDK's own handlers run too
            handlers = getattr(variant, "_handlers", None)
            handlers = dict(handlers) if isinstance(handlers, dict) else {}
            return cls(Controller.from_json(sdk_controller.json()), handlers)
        raise SteeringError(
            f"expected a Variant, a controller or its JSON, got {type(variant).__name__}", field="model"
        )

    def plan(
        self, sae: SAE | None, sae_id: str | None = None, probes: Mapping[str, LinearProbe] | None = None
    ) -> ControllerPlan | None:
        """Compiled against ``sae``; ``probes``: the classifiers its conditions may name, resolved."""
        if self.controller.is_empty():
            return None
        if sae is None:
            raise SteeringError("steering needs an SAE (load one with load_sae_for)", field="sae")
        return compile_controller(self.controller, sae, sae_id, probes)


def steering_batch(
    sae: SAE | None, variant: VariantLike, capture: bool = False, sae_id: str | None = None
) -> tuple[Steering | None, SteeringBatch | None]:
    """Resolve and compile ``variant`` for a single sequence (None when there is nothing to do);
    with ``sae_id``, feature UUIDs of another SAE are refused."""
    steering = Steering.of(variant)
    plan = steering.plan(sae, sae_id) if steering else None
    if plan is None:
        return steering, None
    assert sae is not None  # Steering.plan compiles only against an SAE (it raises without one)
    return steering, SteeringBatch(sae, [plan], capture=capture)


@contextmanager
def steered(model: nn.Module, sae: SAE, batch: SteeringBatch | None) -> Iterator[None]:
    """Apply ``batch`` at the SAE's hookpoint for the duration (nothing when it is None)."""
    if batch is None:
        yield
        return
    with edit_residual(model, sae.cfg.hookpoint, batch):
        yield
