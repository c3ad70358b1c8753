"""Root command: wires the sub-apps together."""

from __future__ import annotations

import typer

from steerlab.cli import audit, chat, classify, data, features, finetune, investigate, mcp, model, sae, serve
from steerlab.cli.errors import one_line_errors

app = typer.Typer(
    help="steerlab: train SAEs on your model, inspect and steer it through labeled features.\n\n"
    'Quick start: steerlab chat "Tell me about the sea" --feature 123=0.8',
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
@one_line_errors
def read_settings() -> None:
    """Read the STEERLAB_* environment before any command: unknown names warned about, bad values refused."""
    from steerlab.settings import get_settings

    get_settings()


app.command("chat")(chat.chat)
app.add_typer(model.app, name="model")
app.add_typer(data.app, name="corpus")
app.command("harvest")(data.harvest_cmd)
app.add_typer(sae.app, name="sae")
app.add_typer(features.app, name="features")
app.add_typer(classify.app, name="classify")
app.command("serve")(serve.serve)
app.add_typer(serve.keys_app, name="keys")
app.command("mcp")(mcp.mcp)
app.command("investigate")(investigate.investigate)
app.command("audit")(audit.audit)
app.command("finetune")(finetune.finetune)
