"""``steerlab finetune``: supervised fine-tuning on chat JSONL with feature knobs (ablate, steer, penalize)
and dials (watched features, the SAE's fit) logged while it trains. See docs/finetune.md."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from steerlab.cli.errors import one_line_errors
from steerlab.cli.options import DEVICE, DTYPE, MODEL, SAE, check_input_file, check_sae_folder


@one_line_errors
def finetune(
    data: Path = typer.Argument(..., help='Chat JSONL: one {"messages": [{"role", "content"}, ...]} per line.'),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: checkpoints/, metrics.jsonl, curves.png, model/."
    ),
    eval_data: Path | None = typer.Option(None, "--eval-data", help="Held-out chat JSONL (default: split off --data)."),
    eval_fraction: float = typer.Option(0.1, "--eval-fraction", help="Share of --data held out when no --eval-data."),
    full: bool = typer.Option(False, "--full", help="Train every weight (small models) instead of LoRA adapters."),
    lora_r: int = typer.Option(8, "--lora-r", help="LoRA rank."),
    lora_alpha: int = typer.Option(16, "--lora-alpha", help="LoRA alpha."),
    lr: float = typer.Option(2e-4, "--lr", help="Peak learning rate (linear warmup, then cosine decay to 0)."),
    warmup_steps: int = typer.Option(10, "--warmup-steps"),
    epochs: int = typer.Option(1, "--epochs"),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many steps (default: --epochs)."),
    batch_size: int = typer.Option(8, "--batch-size"),
    max_len: int = typer.Option(512, "--max-len", help="Tokens kept per conversation."),
    eval_every: int = typer.Option(50, "--eval-every", help="Steps between evals (loss, dials, SAE fit)."),
    save_every: int = typer.Option(100, "--save-every", help="Steps between checkpoints."),
    seed: int = typer.Option(0, "--seed"),
    ablate: str | None = typer.Option(
        None, "--ablate", help="F[,F...]: features (indices or search queries) projected out during training (CAFT)."
    ),
    steer: list[str] = typer.Option(
        [], "--steer", help="F=VALUE, repeatable: a nudge (steering units, as chat --feature) added in training only."
    ),
    penalize: list[str] = typer.Option([], "--penalize", help="F=WEIGHT, repeatable: loss += WEIGHT x activation."),
    watch: str | None = typer.Option(
        None, "--watch", help="F[,F...] logged at each eval (default: the knob features)."
    ),
    query_top_k: int = typer.Option(3, "--query-top-k", help="Features a search query stands for."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    model: str = MODEL,
    sae: str | None = SAE,
    db: Path | None = typer.Option(
        None, "--db", help="Feature database for search queries (default: next to the SAE)."
    ),
    dtype: str | None = DTYPE,
    device: str | None = DEVICE,
) -> None:
    """Fine-tune the model on chat data; knobs act on SAE features during training only, and the merged
    result in OUT/model loads anywhere with --model OUT/model."""
    from steerlab.training.data import read_chat_jsonl, tokenize_all
    from steerlab.training.finetune import FinetuneConfig, Finetuner, load_for_training, split_examples
    from steerlab.training.knobs import parse_list, parse_values

    # What can be checked without the model fails before it loads.
    check_input_file(data, "data")
    conversations = read_chat_jsonl(data, "data")
    held_out = read_chat_jsonl(eval_data, "--eval-data") if eval_data is not None else None
    cfg = FinetuneConfig(
        out=str(out),
        lora=not full,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lr=lr,
        warmup_steps=warmup_steps,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        max_len=max_len,
        eval_every=eval_every,
        save_every=save_every,
        seed=seed,
    )
    cfg.check()
    d_sae = check_sae_folder(sae, model) or 1 << 62
    no_search = None  # indices are checked now; queries once the database is open
    for spec, field in ((ablate, "--ablate"), (watch, "--watch")):
        for item in (spec or "").split(",") if spec else []:
            if item.strip().lstrip("-").isdigit():
                parse_list(item, d_sae, field, no_search)
    for items, field in ((steer, "--steer"), (penalize, "--penalize")):
        for item in items:
            if item.rpartition("=")[0].strip().lstrip("-").isdigit() or "=" not in item:
                parse_values([item], d_sae, field, no_search)

    lm, sae_model, search = load_for_training(model, sae, str(db) if db else None, dtype, device, top_k=query_top_k)
    n = sae_model.cfg.d_sae
    cfg.ablate = parse_list(ablate, n, "--ablate", search)
    cfg.steer = parse_values(steer, n, "--steer", search)
    cfg.penalize = parse_values(penalize, n, "--penalize", search)
    cfg.watch = parse_list(watch, n, "--watch", search)
    examples = tokenize_all(lm.tokenizer, conversations, max_len)
    if held_out is not None:
        train, eval_set = examples, tokenize_all(lm.tokenizer, held_out, max_len)
    else:
        train, eval_set = split_examples(examples, eval_fraction, seed)
    tuner = Finetuner(lm, sae_model, train, eval_set, cfg, progress=progress)
    result = tuner.run(resume=resume)
    result["model"] = str(tuner.save_model())
    result["knobs"] = {"ablate": cfg.ablate, "steer": cfg.steer, "penalize": cfg.penalize, "watch": tuner.watch}
    print(json.dumps(result, indent=2))
