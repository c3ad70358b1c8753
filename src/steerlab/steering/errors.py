"""Every error that bad steering or analysis input can raise, in one place.

All of them are ``ValueError`` subclasses (the CLI prints them as one line, the server maps them to
400) whose message starts with the offending field, e.g. ``scopes[0].conditionals.conditionals[1]
.operator: must be one of > < >= <= == !=, got '=>'``. ``InferenceAborted`` is not bad input: it is
what ``Variant.abort_when`` raises when its condition fires during generation.
"""

from __future__ import annotations


class SteeringError(ValueError):
    """Bad input to steering or analysis. ``field`` names what was wrong (a path into the request)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class EditError(SteeringError):
    """A malformed or out-of-range feature edit (index, value or mode)."""


class UnknownFeatureError(EditError):
    """A feature index that the SAE does not have."""


class ControllerError(SteeringError):
    """Controller JSON (or a condition) that does not follow the Ember controller shape."""


class ConversationError(SteeringError):
    """Messages that cannot be formatted or run: empty, wrong roles, not text."""


class ContextLengthError(ConversationError):
    """A conversation longer than the model's context window."""


class DatasetError(SteeringError):
    """A dataset of conversations that cannot be analysed (e.g. empty)."""


class InferenceAborted(RuntimeError):
    """Raised by ``abort_when`` handlers: the named event fired during generation."""

    def __init__(self, event_name: str, response_so_far: str = "") -> None:
        self.event_name = event_name
        self.response_so_far = response_so_far
        super().__init__(f"generation aborted: event {event_name!r} fired")
