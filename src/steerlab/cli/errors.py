"""Turn expected failures into one line on stderr (no traceback) and exit code 2."""

from __future__ import annotations

import functools
import sys

import typer

EXPECTED = (ValueError, FileNotFoundError, KeyError, RuntimeError)


def one_line_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except EXPECTED as err:
            msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            print(f"error: {msg}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper
