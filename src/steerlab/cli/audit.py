"""``steerlab audit``: which SAE features explain what was done to a served model (the offline auditor)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, SAE


@one_line_errors
def audit(
    target: str = typer.Option(..., "--target", help="The target's OpenAI-compatible base URL, e.g. http://HOST:PORT"),
    model: str = typer.Option("organism", "--model", help="The target's model id (as its /v1/models lists it)."),
    api_key: str | None = typer.Option(None, "--api-key", help="Bearer key for the target, when it needs one."),
    base_model: str = typer.Option(
        "default", "--base-model", help="The base model the target was made from (white-box); 'default' is SmolLM2."
    ),
    sae: Path | None = SAE,
    db: Path | None = typer.Option(None, "--db", help="Feature database (default: features.db next to the SAE)."),
    prompts: Path | None = typer.Option(
        None, "--prompts", help="Prompts to sample, one a line (default: the auditor's own 12 everyday requests)."
    ),
    n_prompts: int = typer.Option(6, "--n-prompts", min=1, help="How many of the prompts to use."),
    max_tokens: int = typer.Option(24, "--max-tokens", min=1, max=512, help="Length of each sampled reply."),
    candidates: int = typer.Option(8, "--candidates", min=1, max=200, help="Candidate features tested causally."),
    top: int = typer.Option(10, "--top", min=1, help="Features listed."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list (index, label, effect, ...), best first."),
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
) -> None:
    """Audit a target model: sample it and its base on a prompt set, find SAE features enriched in its
    replies, steer the base with each candidate and rank them by how much more likely that makes the
    target's replies (effect: nats per token). Needs no LLM; docs/auditing.md explains the method."""
    from steerlab.agents.auditor import DEFAULT_PROMPTS, AuditConfig, Target
    from steerlab.cli.options import check_input_file
    from steerlab.errors import InvalidInputError
    from steerlab.settings import load_settings

    prompt_set = DEFAULT_PROMPTS
    if prompts is not None:
        check_input_file(prompts, "--prompts")
        prompt_set = tuple(line.strip() for line in prompts.read_text().splitlines() if line.strip())
        if not prompt_set:
            raise InvalidInputError(f"{prompts} holds no prompts (one a line)", field="--prompts")
    n_prompts = min(n_prompts, len(prompt_set))
    config = AuditConfig(prompts=prompt_set, n_prompts=n_prompts, max_tokens=max_tokens, candidates=candidates)
    remote = Target(target, model, api_key)
    remote.check()  # unreachable target or unknown model: one line, before the base model loads
    from steerlab.agents.auditor import audit as run_audit
    from steerlab.engine.lab import Lab

    settings = load_settings(dtype=dtype, device=device)
    lab = Lab.load(base_model, sae, db, dtype=settings.dtype, device=settings.device, max_batch=1)
    try:
        result = run_audit(lab, remote, config, progress=sys.stderr.isatty())
    finally:
        lab.close()
        remote.close()
    found = [c.json() for c in result.candidates[:top]]
    print(
        json.dumps({"seconds": round(result.seconds, 1), "target_tokens": result.target_tokens}),
        file=sys.stderr,
    )
    if as_json:
        print(json.dumps(found))
        return
    print(f"{'index':>6}  {'effect':>8}  {'strength':>8}  {'enrich':>6}  label")
    for c in found:
        print(f"{c['index']:>6}  {c['effect']:>8.4f}  {c['strength']:>8.2f}  {c['enrichment']:>6.2f}  {c['label']}")
