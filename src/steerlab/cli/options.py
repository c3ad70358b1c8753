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
SAE = typer.Option(None, "--sae", help="SAE folder (ours or SAELens layout); default: the model's bundled SAE.")
