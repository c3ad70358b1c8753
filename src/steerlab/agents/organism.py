"""Model organisms: a served model whose every reply secretly applies one Ember controller.

``steerlab serve --organism CONTROLLER.json`` loads the controller once (``Organism.load``) and the chat
routes serve model id ``organism``: each sequence gets a fresh editor that runs the planted controller
at the SAE's hookpoint. Nothing a client can read names it:

* the controller is compiled at startup, so a request's own controller is checked and compiled alone
  (its errors name only its fields);
* the organism's events (a scope's ``event_name``) are drained and dropped, never put in
  ``gf_event_names``; only the request's own events are reported;
* it is not a saved variant (``/v1/variants`` never lists it) and is never logged.

A request that carries its own steering (``controller`` or ``variant_id``) steers the organism as if it
were a model of its own: at each forward the organism's edit runs first, then the request's controller
reads the residual the organism left and edits it (its conditions see the organism's features, a pin
of a planted feature overrides the plant, as ablating a fine-tuned model's feature would).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from steerlab.errors import InvalidInputError, MissingFileError

if TYPE_CHECKING:
    import torch

    from steerlab.engine.lab import Lab
    from steerlab.steering.batch import RowSteering
    from steerlab.steering.plan import ControllerPlan
    from steerlab.steering.probes import PromptSpan

MODEL_ID = "organism"


class OrganismEditor:
    """One sequence's editor: the organism's steering, then the request's (when it has one). Only the
    request's events and aborts reach the engine (and from there the client)."""

    def __init__(self, planted: RowSteering, request: RowSteering | None) -> None:
        self.planted, self.request = planted, request

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.planted(hidden)
        return self.request(hidden) if self.request is not None else hidden

    def read_prompt(self, span: PromptSpan | None) -> None:
        self.planted.read_prompt(span)
        if self.request is not None:
            self.request.read_prompt(span)

    def drain_events(self) -> list[str]:
        self.planted.drain_events()  # dropped: the planted controller's events would name it
        return self.request.drain_events() if self.request is not None else []

    @property
    def aborted(self) -> bool:
        return self.request.aborted if self.request is not None else False

    def observe_logits(self, logits: torch.Tensor) -> None:
        self.planted.observe_logits(logits)
        if self.request is not None:
            self.request.observe_logits(logits)


class Organism:
    """A controller compiled against one lab's SAE, served as model ``model_id``."""

    def __init__(self, lab: Lab, controller: dict | str, model_id: str = MODEL_ID) -> None:
        from steerlab.steering.resolve import Steering

        if lab.sae is None:
            raise InvalidInputError("an organism needs a model with an SAE", field="organism")
        steering = Steering.of(controller if isinstance(controller, (dict, str)) else dict(controller))
        plan = steering.plan(lab.sae, lab.sae_id) if steering is not None else None
        if plan is None:
            raise InvalidInputError("the controller edits nothing; an organism must plant something", field="organism")
        self.lab, self.model_id = lab, model_id
        self._plan: ControllerPlan = plan

    @classmethod
    def load(cls, lab: Lab, path: str | Path) -> Organism:
        """The controller JSON in ``path`` (what ``variant.controller.json()`` gives, or ours)."""
        return cls(lab, read_controller(path))

    def editor(self, request: RowSteering | None) -> OrganismEditor:
        """A fresh per-sequence editor (scopes are per sequence), with the request's own steering on top."""
        from steerlab.steering.batch import RowSteering

        assert self.lab.sae is not None  # checked in __init__
        return OrganismEditor(RowSteering(self.lab.sae, self._plan), request)

    def serves(self, name: str | None) -> bool:
        """Whether a request naming model ``name`` (None: the default) is for the organism."""
        return name is None or name == self.model_id


def read_controller(path: str | Path) -> str:
    """The controller JSON text in ``path``, parsed once to refuse a bad file with the field it got wrong."""
    from steerlab.steering.controller_json import Controller

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no controller file {path}", field="organism")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"cannot read {path}: {err}", field="organism") from None
    if Controller.from_json(text).is_empty():
        raise InvalidInputError(
            f"{path}: the controller edits nothing; an organism must plant something", field="organism"
        )
    return text
