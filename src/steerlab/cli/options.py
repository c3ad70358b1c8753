"""Options shared by several commands."""

import typer

MODEL = typer.Option(
    "default", "--model", "-m", help="HF model name or local folder; 'default' is SmolLM2-135M-Instruct."
)
DTYPE = typer.Option("float32", "--dtype", help="float32 or bfloat16 (bfloat16 is slower on CPUs without bf16 units).")
DEVICE = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N.")
SAE = typer.Option(None, "--sae", help="SAE folder (ours or SAELens layout); default: the model's bundled SAE.")
