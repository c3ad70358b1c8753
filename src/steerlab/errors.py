"""Every error steerlab raises on purpose has one base, ``SteerlabError``: something the caller can fix.

Each carries ``field`` (what was wrong: a path into the request or the option, e.g.
``interventions[0].features.features[1].uuid`` or ``--db``) and ``allowed`` (what would have been
accepted), and reads ``"{field}: {message}; allowed: {allowed}"``. Its kind says which HTTP status the
server answers with: only these errors become 4xx (or a 503 with ``Retry-After``); anything else is a
bug, answered 500 with a request id and logged with its traceback. The CLI prints these as one line
and lets everything else show its traceback.

Kinds that were ``ValueError``/``KeyError`` before keep those bases, so code and tests that catch the
built-in types still do. Errors of one package live next to it (``steering/errors.py``,
``features/store_schema.py``...); the ones several packages raise live here.
"""

from __future__ import annotations


class SteerlabError(Exception):
    """Bad input or a request that cannot be served as asked; ``field`` names what, ``allowed`` what instead."""

    status = 400
    code = "invalid_value"
    retry_after: int | None = None

    def __init__(self, message: str, field: str | None = None, allowed: str | None = None):
        self.message, self.field, self.allowed = message, field, allowed
        super().__init__(message)

    def __str__(self) -> str:  # one format for all, whatever built-in type a subclass also is
        text = f"{self.field}: {self.message}" if self.field else self.message
        return f"{text}; allowed: {self.allowed}" if self.allowed else text


class InvalidInputError(SteerlabError, ValueError):
    """A value, file or option that is not allowed (400)."""


class NotFoundError(SteerlabError, LookupError):
    """The thing asked for does not exist: a model, SAE, feature, file (404)."""

    status = 404
    code = "not_found"


class MissingFileError(NotFoundError, FileNotFoundError):
    """A file or folder the caller named does not exist (404; still a ``FileNotFoundError``)."""


class ConflictError(SteerlabError, ValueError):
    """What is on disk belongs to another run or SAE than the one asked for (409)."""

    status = 409
    code = "conflict"


class BusyError(SteerlabError):
    """Full right now; the same request may succeed after ``retry_after`` seconds (503)."""

    status = 503
    code = "busy"

    def __init__(self, message: str, retry_after: int, field: str | None = None):
        super().__init__(message, field)
        self.retry_after = retry_after


class SteeringError(InvalidInputError):
    """Bad input to steering or analysis (a controller, messages, feature edits)."""


class EditError(SteeringError):
    """A malformed or out-of-range feature edit (index, value or mode)."""


class UnknownFeatureError(EditError, KeyError):
    """A feature the SAE or the feature database does not have (by index or UUID)."""
