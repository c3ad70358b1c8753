"""Options shared by several commands. Those standing for a setting default to None: not given, the
STEERLAB_* variable (or the setting's default) applies, so a flag wins only when it is given."""

import typer

MODEL = typer.Option(
    "default", "--model", "-m", help="HF model name or local folder; 'default' is SmolLM2-135M-Instruct."
)
DTYPE = typer.Option(
    None,
    "--dtype",
    help="float32 or bfloat16, slower on CPUs without bf16 units (env STEERLAB_DTYPE, default float32).",
)
DEVICE = typer.Option(None, "--device", help="cpu, cuda or cuda:N (env STEERLAB_DEVICE, default cpu).")
RAY = typer.Option(
    None,
    "--ray",
    help="Split the work across a Ray cluster: HOST:PORT of its head, 'auto', or 'local[:N]' (a private one with "
    "N worker CPUs). Same output as without it (docs/cluster.md).",
)
SAE = typer.Option(None, "--sae", help="SAE folder (ours or SAELens layout); default: the model's bundled SAE.")


# ------------------------------------------------------------- checks that need no model (run before loading one)
def check_input_file(path, option: str) -> None:
    """A file argument that does not exist fails at once, not after the model's seconds of loading."""
    from pathlib import Path

    from steerlab.errors import MissingFileError

    if not Path(path).is_file():
        raise MissingFileError(f"no such file {path}", field=option)


def check_sae_folder(sae, model: str = "default") -> int | None:
    """``d_sae`` of the SAE a command will load (``--sae``, else the model's bundled one), read from its
    cfg.json without loading anything; None when it cannot be told this way (the load then reports).
    A ``--sae`` folder that does not exist fails here, before the model loads."""
    import json
    from pathlib import Path

    from steerlab.bundled_saes import bundled_sae_path
    from steerlab.errors import MissingFileError

    if sae is not None:
        folder = Path(sae)
        if not folder.exists():
            raise MissingFileError(f"no SAE folder {folder}", field="--sae")
    else:
        folder = bundled_sae_path(model)
    try:
        d_sae = json.loads((folder / "cfg.json").read_text())["d_sae"] if folder is not None else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return d_sae if isinstance(d_sae, int) and d_sae > 0 else None
