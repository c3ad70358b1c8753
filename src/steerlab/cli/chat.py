"""``steerlab chat``: stream a (steered) reply from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL, SAE, check_sae_folder
from steerlab.errors import MissingFileError, SteerlabError


@one_line_errors
def chat(
    prompt: str = typer.Argument(..., help="The user message."),
    feature: list[str] = typer.Option(
        [],
        "--feature",
        "-f",
        help="IDX=VALUE[:MODE], repeatable. VALUE is in steering units, Ember's range (0.5 visibly steers, "
        "about 1.0 the concept takes over; STEERLAB_STEERING_UNIT=quantile for the old unit); MODE nudge "
        "(default), pin or mul (a plain factor).",
    ),
    controller: Path | None = typer.Option(
        None,
        "--controller",
        help="Ember controller JSON file (what the goodfire "
        "SDK's variant.controller.json() gives); --feature edits apply after it.",
    ),
    system: str | None = typer.Option(None, "--system", help="System prompt (default: the model's own)."),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Most tokens to generate."),
    temperature: float = typer.Option(0.7, "--temperature", help="0 = greedy."),
    top_p: float = typer.Option(0.9, "--top-p"),
    seed: int | None = typer.Option(None, "--seed", help="Same seed, same text."),
    model: str = MODEL,
    sae: str | None = SAE,
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
) -> None:
    """Chat with the model; --feature edits and --controller files steer it through SAE features
    (error-preserving). Steering events that fire are reported on stderr."""
    from steerlab.engine.lab import Lab, sampling_params
    from steerlab.steering.controller_json import Controller
    from steerlab.steering.edits import parse_edit
    from steerlab.steering.plan import edits_controller

    # Everything that can be wrong with the arguments fails before the model loads.
    edits = [parse_edit(f) for f in feature]
    ctrl = _load_controller(controller) if controller else Controller()
    if edits or not ctrl.is_empty():
        d_sae = check_sae_folder(sae, model)  # the SAE's cfg.json, read without loading anything
        for e in edits if d_sae is not None else []:
            try:
                e.validate(d_sae)
            except SteerlabError as err:
                err.field = err.field or "--feature"
                raise
    params = sampling_params(max_completion_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    if edits or not ctrl.is_empty():
        lab = Lab.load(model, sae, dtype=dtype, device=device, max_batch=1)
    else:  # unsteered: any model, with or without an SAE for it
        from steerlab.models.loader import load_model

        lab = Lab(load_model(model, dtype=dtype, device=device), max_batch=1)
    try:
        for e in edits:
            e.validate(lab.d_sae)
        ctrl.interventions.extend(edits_controller(edits).interventions)
        for event in lab.generate(messages, params, ctrl):
            for name in event.events:
                print(f"\n[event {name} at token {event.index}]", file=sys.stderr)
            sys.stdout.write(event.text)
            sys.stdout.flush()
    finally:
        lab.close()
    sys.stdout.write("\n")


def _load_controller(path: Path):
    from steerlab.steering.controller_json import Controller
    from steerlab.steering.errors import ControllerError

    if not path.is_file():
        raise MissingFileError(f"no such file {path}", field="--controller")
    try:
        return Controller.from_json(path.read_text())
    except ControllerError as err:
        raise ControllerError(err.message, field=f"--controller {path}: {err.field}") from None
