"""The ``steerlab`` command line: one sub-app per concern, every long job with a progress bar."""

from steerlab.cli.app import app

__all__ = ["app"]
