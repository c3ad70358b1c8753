"""``steerlab model``: load/convert models and show what a hookpoint is called."""

from __future__ import annotations

import json
import time

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL

app = typer.Typer(help="Load models, convert the bundled GGUF, list hookpoints.", no_args_is_help=True)


@app.command("info")
@one_line_errors
def info(model: str = MODEL, dtype: str | None = DTYPE, device: str | None = DEVICE) -> None:
    """Load a model (converting and caching the bundled GGUF on first use) and print its shape and load time."""
    from steerlab.models.hooks import block_list
    from steerlab.models.loader import cache_dir_for, load_model

    start = time.perf_counter()
    lm = load_model(model, dtype=dtype, device=device)
    elapsed = time.perf_counter() - start
    prefix, blocks = block_list(lm.model)
    print(
        json.dumps(
            {
                "name": lm.name,
                "layers": len(blocks),
                "d_model": lm.d_model,
                "vocab": lm.config.vocab_size,
                "dtype": str(lm.dtype).removeprefix("torch."),
                "device": str(lm.device),
                "hookpoints": f"{prefix}.0 .. {prefix}.{len(blocks) - 1}",
                "cache": str(cache_dir_for(lm.name)),
                "load_seconds": round(elapsed, 2),
            },
            indent=2,
        )
    )
