"""Our errors are one line on stderr and exit code 2; anything else is a bug and keeps its traceback.

A ``SteerlabError`` is something the user can fix (a bad option, a missing file, a database for
another SAE), so a traceback would only hide the message. File-system errors naming a path (missing,
not permitted, a folder where a file was expected) count as the user's too. Everything else (a
``ValueError`` from numpy, a ``RuntimeError`` from torch...) propagates: exit 1 with the traceback.
"""

from __future__ import annotations

import functools
import sys

import typer

from steerlab.errors import SteerlabError

USERS_FILE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def one_line_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SteerlabError as err:
            _fail(str(err) or type(err).__name__)
        except USERS_FILE_ERRORS as err:
            if err.filename is None:  # not about a path: a bug like any other
                raise
            _fail(f"{err.strerror or type(err).__name__}: {err.filename}")

    return wrapper


def _fail(message: str):
    print(f"error: {message.strip().splitlines()[0]}", file=sys.stderr)
    raise typer.Exit(2) from None
