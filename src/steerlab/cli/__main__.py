"""``python -m steerlab.cli``: the ``steerlab`` command without its console script."""

from steerlab.cli.app import app

app(prog_name="steerlab")
