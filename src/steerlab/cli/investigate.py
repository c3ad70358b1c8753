"""``steerlab investigate "QUESTION"``: an OpenAI-compatible tool-calling chat model investigates with the agent
tools, on a step and token budget, and writes a report whose claims cite tool results (docs/agents.md)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL, SAE


@one_line_errors
def investigate(
    question: str | None = typer.Argument(None, help="What to find out (leave out with --resume)."),
    out: Path = typer.Option(Path("investigation"), "--out", help="Folder for log.jsonl, report.md, report.json."),
    log: Path | None = typer.Option(None, "--log", help="The investigation's JSONL log (default: OUT/log.jsonl)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the investigation in the log."),
    base_url: str | None = typer.Option(None, "--base-url", help="OpenAI-compatible endpoint (incl. /v1)."),
    chat_model: str | None = typer.Option(None, "--chat-model", help="The chat model that investigates."),
    api_key: str | None = typer.Option(None, "--api-key", help="Its bearer key (or STEERLAB_INVESTIGATOR_API_KEY)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Chat completions that may call tools."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", help="Tokens the investigation may spend."),
    target: str | None = typer.Option(
        None,
        "--target",
        help="BASE_URL of a model under investigation (OpenAI-compatible, e.g. 'steerlab serve --organism'): "
        "adds the sample_target tool, its greedy replies, to compare with the base model's.",
    ),
    target_model: str = typer.Option("organism", "--target-model", help="The model id the target serves."),
    target_key: str | None = typer.Option(None, "--target-key", help="The target's bearer key, if it needs one."),
    model: str = MODEL,
    sae: Path | None = SAE,
    db: Path | None = typer.Option(None, "--db", help="Feature database (default: features.db next to the SAE)."),
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
) -> None:
    """Investigate a question about the model with its SAE features; streams progress, writes OUT/report.md and
    OUT/report.json. Every option not given comes from its STEERLAB_* variable (docs/settings.md)."""
    from rich.console import Console
    from rich.markup import escape

    from steerlab.agents.investigator import Budget, ChatEndpoint, ToolBox, write_report
    from steerlab.agents.investigator import investigate as run
    from steerlab.agents.mcp_server import build_server
    from steerlab.agents.tools import FileVariants, LabTools, ResearchLog
    from steerlab.engine.lab import Lab
    from steerlab.errors import InvalidInputError
    from steerlab.settings import load_settings

    settings = load_settings(
        dtype=dtype,
        device=device,
        investigator_base_url=base_url,
        investigator_model=chat_model,
        investigator_api_key=api_key,
        investigator_max_steps=max_steps,
        investigator_max_tokens=max_tokens,
    )
    if not settings.investigator_base_url:
        raise InvalidInputError(
            "no chat endpoint: pass --base-url or set STEERLAB_INVESTIGATOR_BASE_URL (any OpenAI-compatible server "
            "whose model supports tool calls)",
            field="base_url",
        )
    log_path = log or out / "log.jsonl"
    if not resume and log_path.exists():
        raise InvalidInputError(f"{log_path} exists: pass --resume to continue it, or another --out", field="log")
    console = Console(stderr=True, highlight=False)
    styles = {"tool": "cyan", "result": "dim", "model": "green", "budget": "yellow", "resume": "yellow"}

    def progress(kind: str, text: str) -> None:
        console.print(f"[{styles.get(kind, 'white')}]{kind:>7}[/] {escape(text)}", markup=True, soft_wrap=False)

    key = settings.investigator_api_key.get_secret_value() if settings.investigator_api_key else None
    endpoint = ChatEndpoint(
        settings.investigator_base_url, settings.investigator_model, key, settings.investigator_timeout_s
    )
    probe = None
    if target is not None:  # checked before the model loads: a target that does not answer is one line
        from steerlab.agents.auditor import Target

        probe = Target(target, target_model, target_key)
        probe.check()
    session = "investigation-" + "".join(c if c.isalnum() else "-" for c in out.resolve().name)[:40]
    with contextlib.redirect_stdout(sys.stderr):
        lab = Lab.load(model, sae, db, dtype=settings.dtype, device=settings.device, max_batch=4)
    try:
        tools = LabTools(lab, ResearchLog(out / "notes", session), variants=FileVariants(out / "variants"))
        server = build_server(tools)
        if probe is not None:
            from steerlab.agents.target_tool import add_target_tool

            add_target_tool(server, probe)
        state = run(
            question,
            endpoint,
            ToolBox(server),
            log_path,
            Budget(settings.investigator_max_steps, settings.investigator_max_tokens),
            resume=resume,
            progress=progress,
        )
    finally:
        endpoint.close()
        lab.close()
        if probe is not None:
            probe.close()
    md, js = write_report(state, out)
    console.print(f"report: {md} and {js} ({state.steps} steps, {state.tokens} tokens; stopped on {state.stopped})")
