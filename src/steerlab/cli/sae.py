"""``steerlab sae``: train, evaluate, inspect and convert SAEs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL, SAE, check_input_file, check_sae_folder
from steerlab.errors import InvalidInputError

app = typer.Typer(help="Train, evaluate, inspect and convert sparse autoencoders.", no_args_is_help=True)


@app.command("train")
@one_line_errors
def train(
    acts: list[Path] = typer.Option(
        ...,
        "--acts",
        help="Harvest folder written by 'steerlab harvest'; repeatable "
        "(e.g. the text and chat parts of the default corpus).",
    ),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints, metrics.jsonl, training_curves.png, sae/."),
    architecture: str = typer.Option("topk", "--architecture", help="topk, batchtopk, jumprelu or relu."),
    expansion: int = typer.Option(16, "--expansion", help="Latents per model dimension (d_sae = expansion * d_model)."),
    k: int = typer.Option(64, "--k", help="Active latents per token (topk, batchtopk)."),
    tokens: int | None = typer.Option(None, "--tokens", help="Training tokens (default: all harvested, one epoch)."),
    batch_size: int = typer.Option(4096, "--batch-size", help="Tokens per optimizer step."),
    lr: float | None = typer.Option(None, "--lr", help="Peak learning rate (default scales with width)."),
    holdout_tokens: int = typer.Option(
        131_072,
        "--holdout-tokens",
        help="Tail of the stream kept out of training, used to measure feature_scale (reading units) and holdout FVU.",
    ),
    seed: int = typer.Option(0, "--seed"),
    save_dtype: str = typer.Option(
        "float32", "--save-dtype", help="Dtype of the final sae/ weights (bfloat16 halves it)."
    ),
    no_resume: bool = typer.Option(False, "--no-resume", help="Ignore existing checkpoints in OUT."),
    device: str | None = DEVICE,
    dtype: str | None = typer.Option(
        None, "--dtype", help="float32, or bfloat16: forward and backward in bf16 autocast (GPUs from Ampere on)."
    ),
    massive_factor: float | None = typer.Option(
        None,
        "--massive-factor",
        help="Leave out tokens whose norm is over this many times their batch's median (attention sinks); "
        "0 keeps every token. Default: STEERLAB_MASSIVE_FACTOR (10).",
    ),
) -> None:
    """Train an SAE on harvested activations (resumes from OUT's last checkpoint unless --no-resume)."""
    from steerlab.activations.shard_source import ShardActivationSource
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.train import TrainConfig, train_sae
    from steerlab.settings import get_settings

    settings = get_settings()
    checked = TrainConfig(  # before reading
        device=device or settings.device, compute_dtype=dtype or settings.dtype, massive_factor=massive_factor
    )
    probe = source = ShardActivationSource(list(acts))
    manifest = probe.manifest
    hookpoint = manifest["hookpoint"]
    layer = int(hookpoint.rsplit(".", 1)[1]) if hookpoint.rsplit(".", 1)[-1].isdigit() else None
    cfg = SAEConfig(
        d_in=probe.d_in,
        d_sae=expansion * probe.d_in,
        architecture=architecture,
        k=k,
        model_name=manifest["model"],
        hookpoint=hookpoint,
        layer=layer,
    )
    train_kwargs = {"total_tokens": tokens, "batch_size": batch_size, "seed": seed, "holdout_tokens": holdout_tokens}
    train_kwargs |= {"device": checked.device, "compute_dtype": checked.compute_dtype, "massive_factor": massive_factor}
    if lr is not None:
        train_kwargs["lr"] = lr
    sae = train_sae(cfg, TrainConfig(**train_kwargs), source, out, resume=not no_resume)
    if save_dtype != "float32":
        sae.save(out / "sae", dtype=save_dtype)
    extra = sae.cfg.extra
    print(
        f"left out {extra['massive_tokens_dropped']} massive tokens (norm over {extra['massive_factor']:g}x the "
        f"batch median: attention sinks) of {extra['trained_tokens']} trained; the harvests count "
        f"{source.massive_tokens if source.massive_tokens is not None else 'an unknown number'} per epoch"
    )
    print(f"SAE saved to {out / 'sae'}")


@app.command("eval")
@one_line_errors
def evaluate(
    text_file: Path = typer.Option(..., "--text-file", help=".txt, or .jsonl/.parquet with 'text' or 'messages'."),
    sae: str | None = SAE,
    model: str = MODEL,
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
    max_tokens: int = typer.Option(20_000, "--max-tokens", help="Evaluate on at most this many tokens."),
    context_length: int = typer.Option(256, "--context-length"),
    batch_size: int = typer.Option(8, "--batch-size"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    massive_factor: float | None = typer.Option(
        None,
        "--massive-factor",
        help="Leave tokens over this many times their batch's median norm (attention sinks) out of FVU, L0 and "
        "dead counts; 0 keeps every token. Default: STEERLAB_MASSIVE_FACTOR (10).",
    ),
) -> None:
    """FVU, L0, dead fraction, CE-loss score and KL of an SAE spliced into its model, on held-out text."""
    from steerlab.models.loader import load_model
    from steerlab.sae.bundled import load_sae_for
    from steerlab.sae.evals import evaluate_sae, sequences_from_text_file

    check_input_file(text_file, "--text-file")  # before the model's seconds of loading
    check_sae_folder(sae)
    if massive_factor is not None and not massive_factor >= 0:
        raise InvalidInputError(f"must be >= 0 (0 keeps every token), got {massive_factor}", field="--massive-factor")
    lm = load_model(model, dtype=dtype, device=device)
    sae_model = load_sae_for(lm, sae)
    sequences = sequences_from_text_file(text_file, lm.tokenizer, context_length, max_tokens)
    result = evaluate_sae(lm, sae_model, sequences, batch_size=batch_size, progress=not as_json, massive=massive_factor)
    if as_json:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"SAE at {result['hookpoint']} on {result['num_tokens']} tokens")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


@app.command("info")
@one_line_errors
def info(
    sae: str | None = typer.Argument(None, help="SAE folder; default: the bundled SAE."), model: str = MODEL
) -> None:
    """Print an SAE's configuration (architecture, width, hookpoint, provenance)."""
    from steerlab.bundled_saes import bundled_sae_path
    from steerlab.sae.base import SAE as SAEModel

    path = sae or bundled_sae_path(model)
    if path is None:
        raise InvalidInputError(f"no SAE given and none bundled for {model!r}", field="--sae")
    loaded = SAEModel.load(path)
    print(json.dumps({"path": str(path), **loaded.cfg.to_dict()}, indent=2, default=str))


@app.command("convert")
@one_line_errors
def convert(
    src: Path = typer.Argument(..., help="SAE folder (ours or SAELens)."),
    dst: Path = typer.Argument(..., help="Output folder."),
    to: str = typer.Option("saelens", "--to", help="saelens or steerlab."),
    dtype: str | None = typer.Option(None, "--dtype", help="Weights dtype of the output."),
) -> None:
    """Convert between our folder format and SAELens's (cfg.json + sae_weights.safetensors)."""
    from steerlab.sae.base import SAE as SAEModel

    loaded = SAEModel.load(src)
    if to == "saelens":
        from steerlab.sae.saelens_format import save_saelens

        save_saelens(loaded, dst)
    elif to == "steerlab":
        loaded.save(dst, dtype=dtype)
    else:
        raise InvalidInputError(f"unknown format {to!r}", field="--to", allowed="saelens, steerlab")
    print(f"wrote {dst}")


@app.command("import")
@one_line_errors
def import_(
    src: Path = typer.Argument(..., help="The SAE as its project wrote it: a folder or a .safetensors/.npz file."),
    dst: Path = typer.Argument(..., help="Output folder (steerlab format)."),
    fmt: str | None = typer.Option(
        None,
        "--from",
        help="sparsify, gemma-scope, llama-scope, dictionary-learning or goodfire (default: detected from the files).",
    ),
    model: str | None = typer.Option(
        None, "--model", help="Check the SAE against this model (width, layer) and record it as the SAE's model."
    ),
    layer: int | None = typer.Option(
        None, "--layer", help="Block whose output the SAE reads, when the files do not say."
    ),
    hookpoint: str | None = typer.Option(None, "--hookpoint", help="Module name the SAE reads (overrides --layer)."),
    dtype: str | None = typer.Option(None, "--dtype", help="Weights dtype of the output (e.g. bfloat16)."),
) -> None:
    """Import an SAE published by EleutherAI sparsify, Gemma Scope, Llama Scope, dictionary_learning or Goodfire
    (safetensors or npz only: a pickle file is refused with the command that converts it)."""
    from steerlab.models.registry import canonical_name
    from steerlab.sae.imports import check_fits_model, import_sae

    sae = import_sae(src, fmt, model_name=canonical_name(model) if model else None, layer=layer, hookpoint=hookpoint)
    if model is not None:
        sae.cfg.hookpoint = check_fits_model(sae, model)
    sae.save(dst, dtype=dtype)
    cfg = sae.cfg
    print(f"imported {cfg.architecture} SAE d_in={cfg.d_in} d_sae={cfg.d_sae} at {cfg.hookpoint} -> {dst}")


@app.command("import-labels")
@one_line_errors
def import_labels(
    export: Path = typer.Argument(..., help="Neuronpedia explanations export (.json, .jsonl, maybe .gz)."),
    sae: Path = typer.Option(..., "--sae", help="The SAE folder the labels are for (e.g. from 'steerlab sae import')."),
    db: Path | None = typer.Option(None, "--db", help="Feature database (default: features.db next to the SAE)."),
    source: str | None = typer.Option(
        None,
        "--neuronpedia-id",
        help="Neuronpedia MODEL/SAE the export must be for, e.g. gemma-2-2b/20-gemmascope-res-16k.",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace labels already in the database."),
) -> None:
    """Label an SAE's features from a Neuronpedia export; an export for another SAE is refused."""
    from steerlab.features.identity import default_db_path, sae_info
    from steerlab.features.neuronpedia import import_labels as do_import
    from steerlab.features.store import FeatureStore
    from steerlab.sae.base import SAE as SAEModel

    check_sae_folder(str(sae))
    loaded = SAEModel.load(sae)
    info = sae_info(loaded, sae)
    path = db if db is not None else default_db_path(sae)
    with FeatureStore(path) as store:
        if info.sae_id not in {s.sae_id for s in store.list_saes()}:
            if store.list_saes():
                raise InvalidInputError(f"{path} describes another SAE; pass --db for this one", field="--db")
            store.add_sae(info)
        summary = do_import(store, info.sae_id, export, layer=loaded.cfg.layer, expected=source, overwrite=overwrite)
    kept = (
        f" ({summary.skipped_existing} existing labels kept; --overwrite replaces them)"
        if summary.skipped_existing
        else ""
    )
    print(f"{summary.labels} labels from {summary.source} -> {path}{kept}")
