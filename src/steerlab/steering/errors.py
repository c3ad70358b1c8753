"""Every error that bad steering or analysis input can raise, in one place.

All of them are ``SteerlabError``s (and ``ValueError``s; the CLI prints them as one line, the server
answers 400) whose message starts with the offending field, e.g. ``scopes[0].conditionals.conditionals[1]
.operator: must be one of > < >= <= == !=, got '=>'``. ``SteeringError``, ``EditError`` and
``UnknownFeatureError`` live in ``steerlab.errors`` because the feature database raises the last too.
``InferenceAborted`` is not bad input: it is what ``Variant.abort_when`` raises when its condition
fires during generation.
"""

from __future__ import annotations

from steerlab.errors import EditError, SteeringError, SteerlabError, UnknownFeatureError

__all__ = [
    "ContextLengthError",
    "ControllerError",
    "ConversationError",
    "DatasetError",
    "EditError",
    "InferenceAborted",
    "SteeringError",
    "UnknownFeatureError",
]


class ControllerError(SteeringError):
    """Controller JSON (or a condition) that does not follow the Ember controller shape."""


class ConversationError(SteeringError):
    """Messages that cannot be formatted or run: empty, wrong roles, not text."""


class ContextLengthError(ConversationError):
    """A conversation longer than the model's context window."""


class DatasetError(SteeringError):
    """A dataset of conversations that cannot be analysed (e.g. empty)."""


class InferenceAborted(SteerlabError, RuntimeError):
    """Raised by ``abort_when`` handlers: the named event fired during generation."""

    code = "aborted"

    def __init__(self, event_name: str, response_so_far: str = "") -> None:
        self.event_name = event_name
        self.response_so_far = response_so_far
        super().__init__(f"generation aborted: event {event_name!r} fired")
