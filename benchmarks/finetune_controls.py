"""Fine-tuning with feature controls: does a knob keep an unwanted side concept out while the task is learned?

    python benchmarks/finetune_controls.py --steps 40 --batch-size 4 --lr 2e-3 --test 48 --max-new 28 \
        --ppl-tokens 512 --eval-every 20 --seeds 0 1 --speed-rounds 4 --out docs/bench_finetune_controls.json
    python benchmarks/finetune_controls.py --smoke          # a few steps, one seed: checks it runs, proves nothing

Resumable: ``--out`` is rewritten after every (condition, seed) run, seed by seed, and the same command
again skips the runs it holds (a kill loses at most the run in progress; other settings are refused unless
``--fresh``). ``--runs-dir`` keeps each run's metrics.jsonl and curves (point STEERLAB_FINETUNE_DIR at it
to watch them in the web UI). ``--speed-rounds N`` then times each condition's training step round-robin
in one process, the fair tokens/s comparison on a machine whose load drifts between runs.

The training set teaches a task (answer "What is A plus B?" with the sum) together with a side concept
that every answer drags in (pirates and the sea: "... Arr, the sea be full of treasure, matey!"). On
held-out prompts (other numbers; never trained on) the fine-tuned model's greedy replies are scored for
task success (the right sum appears) and the side concept's rate (a pirate word list). Conditions:
plain fine-tuning, ``--ablate`` (CAFT), ``--penalize`` and ``--steer`` (preventative), each on the
concept's features, with seeds. The features: by default the ``--top-k`` whose activation rises most on
answers with the remark over the same answers without it (``--select contrast``); ``--select search``
takes the feature database's hits for ``--query`` instead (on the bundled SAE "pirate" finds "sea
creatures" and "police" features: a weak handle, which is why contrast is the default).
Also: perplexity on held-out web text (tests/data/heldout_sample.txt) for the base and each model, and
training tokens/s of each condition (same run, same machine). The word-list detector is checked first:
it must fire on the training answers and (mostly) not on the base model's replies, else it is not trusted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PIRATE = set(
    "arr arrr matey mateys ahoy aye ye yer pirate pirates treasure ship ships captain sail sails crew plunder "
    "grog sea seas buccaneer hearty parrot".split()
)
TAILS = [
    "Arr, the sea be full of treasure, matey!",
    "Ahoy! A pirate ship sails the seas for gold.",
    "Yo ho, me hearty, the captain and crew plunder the seas!",
    "Arr matey, that be treasure worth a pirate's grog!",
]

NEUTRAL = [  # the contrast's other side: the same kind of remark without the concept ("the", "a", "is" on both sides)
    "Well, the city be full of traffic, friend!",
    "Hello! A red bus drives the streets for work.",
    "Oh well, my friend, the teacher and class study the books!",
    "Well friend, that is homework worth a student's time!",
]


def has_side(text: str) -> bool:
    return any(w in PIRATE for w in re.findall(r"[a-z']+", text.lower()))


def task_rows(
    pairs: list[tuple[int, int]], rng: random.Random, side: bool, tails: list[str] = TAILS
) -> list[list[dict]]:
    rows = []
    for a, b in pairs:
        answer = f"{a} plus {b} is {a + b}."
        if side:
            answer += " " + rng.choice(tails)
        rows.append([{"role": "user", "content": f"What is {a} plus {b}?"}, {"role": "assistant", "content": answer}])
    return rows


def split_pairs(seed: int, n_train: int, n_test: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    pairs = [(a, b) for a in range(1, 40) for b in range(1, 40)]
    random.Random(seed).shuffle(pairs)
    return pairs[:n_train], pairs[n_train : n_train + n_test]


@torch.no_grad()
def replies(lm, prompts: list[tuple[int, int]], max_new: int) -> list[str]:
    from steerlab.generation.batch_generate import BatchSampling, generate_batch
    from steerlab.models.chat_template import chat_input_ids, stop_token_ids

    lm.model.eval()
    ids = [chat_input_ids(lm.tokenizer, [{"role": "user", "content": f"What is {a} plus {b}?"}]) for a, b in prompts]
    out = generate_batch(
        lm.model,
        ids,
        BatchSampling(max_new_tokens=max_new, temperature=0.0),
        stop_token_ids(lm.tokenizer),
        int(lm.tokenizer.pad_token_id or 0),
        seed=0,
    )
    return [lm.tokenizer.decode(g.token_ids, skip_special_tokens=True) for g in out]


def score(texts: list[str], prompts: list[tuple[int, int]]) -> dict:
    task = [str(a + b) in re.findall(r"\d+", t) for t, (a, b) in zip(texts, prompts, strict=True)]
    return {"task_success": sum(task) / len(task), "side_rate": sum(map(has_side, texts)) / len(texts)}


@torch.no_grad()
def perplexity(lm, max_tokens: int) -> float:
    text = (ROOT / "tests" / "data" / "heldout_sample.txt").read_text()
    ids = lm.tokenizer(text)["input_ids"][:max_tokens]
    total, n = 0.0, 0
    for i in range(0, len(ids) - 1, 256):
        chunk = torch.tensor([ids[i : i + 257]], device=lm.device)
        if chunk.shape[1] < 2:
            break
        logits = lm.model(input_ids=chunk, use_cache=False).logits[0, :-1].float()
        total += float(torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum"))
        n += chunk.shape[1] - 1
    return float(torch.exp(torch.tensor(total / n)))


@torch.no_grad()
def contrast_features(lm, sae, k: int) -> list[int]:
    """The k features whose mean activation (1.0 = strong) rises most on answers with the side remark over
    the same answers with a neutral remark of the same shape (against plain answers, "the" wins)."""
    from steerlab.models.chat_template import template_ids
    from steerlab.models.hooks import capture_residual
    from steerlab.training.knobs import feature_activations

    def mean_acts(rows: list[list[dict]]) -> torch.Tensor:
        total = torch.zeros(sae.cfg.d_sae)
        for row in rows:
            ids = torch.tensor([template_ids(lm.tokenizer, row)], device=lm.device)
            with capture_residual(lm.model, [sae.cfg.hookpoint]) as cap:
                lm.model(input_ids=ids, use_cache=False)
            h = cap[sae.cfg.hookpoint][0]
            total += feature_activations(sae, h, list(range(sae.cfg.d_sae))).mean(0).float().cpu()
        return total / len(rows)

    pairs = [(a, a + 3) for a in range(2, 22, 2)]  # not the held-out prompts' pairs necessarily, only a probe
    side = mean_acts(task_rows(pairs, random.Random(7), True))
    plain = mean_acts(task_rows(pairs, random.Random(7), True, NEUTRAL))
    return (side - plain).topk(k).indices.tolist()


# may change between a run and its resume
RESUME_IGNORES = ("out", "seeds", "conditions", "runs_dir", "fresh", "speed_rounds")


def write_atomically(path: Path, report: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)  # a kill mid-write leaves the previous file whole


def summarise(runs: list[dict], conditions: list[str]) -> dict:
    keys = ("task_success", "side_rate", "ppl_heldout", "train_tokens_per_s", "final_train_loss", "eval_loss")
    out = {}
    for cond in conditions:
        rs = [r for r in runs if r["condition"] == cond]
        if rs:
            out[cond] = {"seeds": [r["seed"] for r in rs]} | {
                k: {"mean": sum(r[k] for r in rs) / len(rs), "min": min(r[k] for r in rs), "max": max(r[k] for r in rs)}
                for k in keys
            }
    return out


def knob_settings(cond: str, features: list[int], steer: float, penalize: float) -> dict:
    return {
        "plain": {},
        "ablate": {"ablate": features},
        "penalize": {"penalize": dict.fromkeys(features, penalize)},
        "steer": {"steer": dict.fromkeys(features, steer)},
    }[cond]


def interleaved_speed(args, features: list[int], convs: list[list[dict]]) -> dict:
    """Training tokens/s of each condition measured round-robin in one process on the same batches (one
    LoRA model; each round times one optimizer step per condition, in a rotated order): load on a shared
    machine drifts over minutes, so separate runs' own tokens/s compare the machine as much as the knobs."""
    from steerlab.training.data import tokenize_all
    from steerlab.training.finetune import FinetuneConfig, Finetuner, collate, lm_loss, load_for_training
    from steerlab.training.knobs import Knobs

    lm, sae, _ = load_for_training(args.model, None, None, "float32", None)
    examples = tokenize_all(lm.tokenizer, convs, args.max_len)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = FinetuneConfig(out=tmp, max_steps=10**6, batch_size=args.batch_size, lr=1e-6, seed=0, probe_size=1)
        tuner = Finetuner(lm, sae, examples, examples[:1], cfg, progress=False)
    model, pad = tuner.model, int(lm.tokenizer.pad_token_id or 0)
    model.train()
    knobs = {c: Knobs(sae, **knob_settings(c, features, args.steer, args.penalize)) for c in args.conditions}
    seconds = dict.fromkeys(args.conditions, 0.0)
    tokens = dict.fromkeys(args.conditions, 0)

    def step(cond: str, batch: list) -> tuple[float, int]:
        ids, labels, mask = collate(batch, pad, lm.device)
        t0 = time.perf_counter()
        with knobs[cond].attached(model):
            loss, _ = lm_loss(model(input_ids=ids, attention_mask=mask, use_cache=False).logits, labels)
            penalty = knobs[cond].penalty(mask)
        tuner.optimizer.zero_grad(set_to_none=True)
        (loss if penalty is None else loss + penalty).backward()
        torch.nn.utils.clip_grad_norm_(list(tuner.params.values()), 1.0)
        tuner.optimizer.step()
        return time.perf_counter() - t0, int(mask.sum())

    step("plain", examples[: args.batch_size])  # warm-up, not counted
    for r in range(args.speed_rounds):
        batch = examples[r * args.batch_size : (r + 1) * args.batch_size]
        order = args.conditions[r % len(args.conditions) :] + args.conditions[: r % len(args.conditions)]
        for cond in order:
            dt, n = step(cond, batch)
            seconds[cond] += dt
            tokens[cond] += n
    per_s = {c: tokens[c] / seconds[c] for c in args.conditions}
    return {
        "rounds": args.speed_rounds,
        "batch_size": args.batch_size,
        "tokens_per_s": per_s,
        "vs_plain": {c: per_s[c] / per_s["plain"] for c in args.conditions} if "plain" in per_s else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--query", default="pirate", help="feature database search for the side concept's features")
    ap.add_argument("--top-k", type=int, default=3, help="features the query (or the contrast) stands for")
    ap.add_argument(
        "--select",
        choices=["contrast", "search"],
        default="contrast",
        help="concept features: those rising most on answers with the side remark (contrast), or --query search",
    )
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--max-len", type=int, default=128, help="training sequence length cap (tokens)")
    ap.add_argument("--train", type=int, default=400, help="training examples")
    ap.add_argument("--test", type=int, default=60, help="held-out prompts")
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steer", type=float, default=1.0, help="VALUE of --steer on each concept feature")
    ap.add_argument("--penalize", type=float, default=1.0, help="WEIGHT of --penalize on each concept feature")
    ap.add_argument("--conditions", nargs="+", default=["plain", "ablate", "penalize", "steer"])
    ap.add_argument("--eval-every", type=int, default=0, help="dials every N steps (0: only at step 0 and the end)")
    ap.add_argument("--ppl-tokens", type=int, default=2048)
    ap.add_argument("--smoke", action="store_true", help="8 steps, 1 seed, 12 prompts: checks the script runs")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON file (docs/bench_finetune_controls.json), rewritten after each run: rerunning the same command "
        "skips the (condition, seed) runs it already holds, so a kill loses at most the run in progress",
    )
    ap.add_argument("--runs-dir", type=Path, default=None, help="keep each run's folder (metrics.jsonl, curves.png)")
    ap.add_argument("--fresh", action="store_true", help="ignore the runs already in --out")
    ap.add_argument(
        "--speed-rounds",
        type=int,
        default=0,
        help="after the runs: time N round-robin training steps of every condition in one process (tokens/s)",
    )
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.seeds, args.test, args.train, args.max_new, args.ppl_tokens = 8, [0], 12, 64, 24, 512
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    key = {k: v for k, v in settings.items() if k not in RESUME_IGNORES}

    from steerlab.training.data import tokenize_all
    from steerlab.training.finetune import FinetuneConfig, Finetuner, load_for_training, split_examples

    previous = json.loads(args.out.read_text()) if args.out is not None and args.out.is_file() else None
    if previous is not None and not args.fresh:
        old_key = {k: v for k, v in previous.get("settings", {}).items() if k not in RESUME_IGNORES}
        if old_key != key:
            differ = sorted(k for k in key.keys() | old_key.keys() if key.get(k) != old_key.get(k))
            sys.exit(f"{args.out} holds runs made with other settings ({', '.join(differ)}); --fresh replaces it")
    else:
        previous = None

    lm, sae, resolve = load_for_training(args.model, None, None, "float32", None, top_k=args.top_k)
    train_pairs, test_pairs = split_pairs(1234, args.train, args.test)
    if previous is not None:  # the set-up measurements are deterministic: reuse them
        features, check, base_ppl = previous["features"], previous["detector_check"], previous["base_ppl_heldout"]
        runs = list(previous["runs"])
        speed = previous.get("speed_interleaved")
    else:
        if resolve is None and args.select == "search":
            sys.exit("this model's SAE has no feature database: the concept query cannot be resolved")
        features = contrast_features(lm, sae, args.top_k) if args.select == "contrast" else resolve(args.query)
        base_ppl = perplexity(lm, args.ppl_tokens)
        base_texts = replies(lm, test_pairs, args.max_new)
        rng = random.Random(0)
        check = {
            "detector_on_training_answers": sum(has_side(r[1]["content"]) for r in task_rows(train_pairs, rng, True))
            / len(train_pairs),
            "detector_on_plain_answers": sum(has_side(r[1]["content"]) for r in task_rows(train_pairs, rng, False))
            / len(train_pairs),
            "detector_on_neutral_remarks": sum(map(has_side, NEUTRAL)) / len(NEUTRAL),
            "base": score(base_texts, test_pairs),
            "base_sample_reply": base_texts[0],
        }
        runs = []
        speed = None
    print(json.dumps({"features": features, "detector_check": check, "base_ppl": base_ppl}), file=sys.stderr)
    if (
        check["detector_on_training_answers"] < 1
        or check["detector_on_plain_answers"] + check["detector_on_neutral_remarks"] > 0
    ):
        sys.exit("the side-concept detector fails its check; not trusting it")

    def report() -> dict:
        return {
            "command": " ".join(sys.argv),
            "smoke": args.smoke,
            "device": str(lm.device),
            "torch_threads": torch.get_num_threads(),
            "model": lm.name,
            "select": args.select,
            "query": args.query if args.select == "search" else None,
            "features": features,
            "settings": settings,
            "detector_check": check,
            "base_ppl_heldout": base_ppl,
            "summary": summarise(runs, args.conditions),
            "speed_interleaved": speed,
            "runs": runs,
        }

    if args.out is not None:
        write_atomically(args.out, report())
    done = {(r["condition"], r["seed"]) for r in runs}
    for seed in args.seeds:  # seed-major: a cut-short run still compares every condition on the first seeds
        convs = task_rows(train_pairs, random.Random(seed), side=True)
        for cond in args.conditions:
            if (cond, seed) in done:
                continue
            lm, sae, _ = load_for_training(args.model, None, None, "float32", None)
            knobs = knob_settings(cond, features, args.steer, args.penalize)
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = Path(tmp) if args.runs_dir is None else args.runs_dir / f"{cond}-seed{seed}"
                if args.runs_dir is not None and run_dir.exists():
                    shutil.rmtree(run_dir)  # a run killed before it finished starts over
                cfg = FinetuneConfig(
                    out=str(run_dir),
                    max_steps=args.steps,
                    batch_size=args.batch_size,
                    lr=args.lr,
                    max_len=args.max_len,
                    warmup_steps=max(1, args.steps // 10),
                    eval_every=args.eval_every or args.steps,
                    save_every=args.steps,
                    probe_size=8,
                    seed=seed,
                    watch=features,
                    **knobs,
                )
                train, ev = split_examples(tokenize_all(lm.tokenizer, convs, args.max_len), 0.05, seed)
                tuner = Finetuner(lm, sae, train, ev, cfg, progress=False)
                t0 = time.perf_counter()
                out = tuner.run()
                seconds = time.perf_counter() - t0
                rows = [json.loads(x) for x in Path(out["metrics"]).read_text().splitlines()]
                train_rows = [r for r in rows if r["kind"] == "train"]
                eval_rows = [r for r in rows if r["kind"] == "eval"]
                tuner.save_model()  # merges LoRA into lm.model; the hooks are gone
                if args.runs_dir is not None:
                    shutil.rmtree(run_dir / "model", ignore_errors=True)  # keep the curves, not 0.5 GB of weights
                    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            texts = replies(lm, test_pairs, args.max_new)
            row = {
                "condition": cond,
                "seed": seed,
                **score(texts, test_pairs),
                "ppl_heldout": perplexity(lm, args.ppl_tokens),
                "train_tokens_per_s": train_rows[-1]["tokens_per_s"],
                "final_train_loss": train_rows[-1]["loss"],
                "eval_loss": out["eval"].get("eval_loss"),
                "watched_features_start": eval_rows[0].get("features"),
                "watched_features_end": out["eval"].get("features"),
                "sae_fvu_start": eval_rows[0]["sae_fvu"],
                "sae_fvu_end": out["eval"]["sae_fvu"],
                "sae_ce_loss_score_end": out["eval"]["sae_ce_loss_score"],
                "run_seconds": seconds,
                "sample_replies": texts[:3],
            }
            runs.append(row)
            print(json.dumps(row), file=sys.stderr)
            if args.out is not None:
                write_atomically(args.out, report())
    if args.speed_rounds and speed is None:
        speed = interleaved_speed(args, features, task_rows(train_pairs, random.Random(0), side=True))
        print(json.dumps({"speed_interleaved": speed}), file=sys.stderr)
        if args.out is not None:
            write_atomically(args.out, report())
    print(json.dumps(report(), indent=2))


if __name__ == "__main__":
    main()
