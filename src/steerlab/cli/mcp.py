"""``steerlab mcp``: the agent tools (search, features, inspect, contrast, generate, steer, ablate, attribute,
AutoSteer, corpus search, classify, research log) over MCP stdio."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL, SAE


@one_line_errors
def mcp(
    model: str = MODEL,
    sae: Path | None = SAE,
    db: Path | None = typer.Option(None, "--db", help="Feature database (default: features.db next to the SAE)."),
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
    session: str = typer.Option(
        "default",
        "--session",
        help="Research log to keep notes in: $STEERLAB_HOME/research_logs/SESSION.jsonl.",
    ),
) -> None:
    """Serve steerlab's tools to an agent over MCP on stdin/stdout (e.g. as a coding assistant's MCP server).

    Tools: search_features, get_feature, inspect, contrast, generate, steer, ablate, attribute, autosteer,
    search_corpus, classify, research_log_append, research_log_read (docs/agents.md). Variants that steer
    saves go to $STEERLAB_HOME/variants/NAME.json.
    Every option not given here comes from its STEERLAB_* variable (docs/settings.md).
    """
    from steerlab.agents.mcp_server import build_server
    from steerlab.agents.tools import FileVariants, LabTools, ResearchLog
    from steerlab.engine.lab import Lab
    from steerlab.settings import load_settings

    settings = load_settings(dtype=dtype, device=device)
    log = ResearchLog(settings.home / "research_logs", session)  # a bad --session fails before the model loads
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the protocol only
        lab = Lab.load(model, sae, db, dtype=settings.dtype, device=settings.device, max_batch=4)
    try:
        build_server(LabTools(lab, log, variants=FileVariants(settings.home / "variants"))).run("stdio")
    finally:
        lab.close()
