"""``steerlab chat``: stream a (steered) reply from the command line."""

from __future__ import annotations

import sys

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL, SAE


@one_line_errors
def chat(
    prompt: str = typer.Argument(..., help="The user message."),
    feature: list[str] = typer.Option([], "--feature", "-f", help="IDX=VALUE[:MODE], repeatable. VALUE is in "
                                      "units where 1.0 is a strong activation; MODE nudge (default), pin or mul."),
    system: str | None = typer.Option(None, "--system", help="System prompt (default: the model's own)."),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Most tokens to generate."),
    temperature: float = typer.Option(0.7, "--temperature", help="0 = greedy."),
    top_p: float = typer.Option(0.9, "--top-p"),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same text."),
    model: str = MODEL, sae: str | None = SAE, dtype: str = DTYPE, device: str = DEVICE,
) -> None:
    """Chat with the model; --feature edits steer it through SAE features (error-preserving)."""
    from steerlab.steering.chat import stream_chat
    from steerlab.steering.edits import parse_edit

    edits = [parse_edit(f) for f in feature]  # bad syntax fails before the model loads
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    from steerlab.generation.sampler import SamplingParams
    from steerlab.models.loader import load_model
    from steerlab.sae.bundled import load_sae_for

    params = SamplingParams(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed).validate()
    lm = load_model(model, dtype=dtype, device=device)
    sae_model = load_sae_for(lm, sae) if edits else None
    for event in stream_chat(lm, messages, params, sae=sae_model, edits=edits):
        sys.stdout.write(event.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
