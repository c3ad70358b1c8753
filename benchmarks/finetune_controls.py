"""Fine-tuning with feature controls: does a knob keep an unwanted side concept out while the task is learned?

    python benchmarks/finetune_controls.py --split dev --seeds 100 \
        --conditions plain ablate@10 steer@0.1 penalize@1 \
        --out docs/bench_finetune_controls_dev.json                 # choose each knob's setting on dev sums
    python benchmarks/finetune_controls.py --split test --seeds 0 1 2 --conditions plain ablate@N steer@V \
        penalize@W --speed-rounds 12 --eval-every 10 --out docs/bench_finetune_controls.json   # the figures
    python benchmarks/finetune_controls.py --smoke          # a few steps, one seed: checks it runs, proves nothing

The training set teaches a task (answer "What is A plus B?" with the sum) together with a side concept
that every answer carries: it is in French, in varied words (6 phrasings of the sum x 16 remarks), so the
model has to learn "answer in French", a style, rather than one memorised sentence. On held-out sums
(never trained on; ``--split dev`` and ``--split test`` are disjoint) the fine-tuned model's greedy
replies are scored for task success (the right sum appears) and the side concept's rate (a French word
detector, checked first: it must fire on every training answer and on French it was not written from,
and on none of the same answers in English nor on the base model's replies, else it is not trusted).
Conditions: plain fine-tuning, ``ablate`` (CAFT), ``penalize`` and ``steer`` (preventative steering),
on the concept's features; ``ablate@N``, ``steer@VALUE``, ``penalize@WEIGHT`` give a condition its own
setting. The features: by default the ``--top-k`` whose activation over the answer tokens rises most on
the French answers over the same answers in English (``--select contrast``; on the bundled SAE "French
text", "German text", "Spanish text" and sub-word features of Romance text); the knobs act on the first
``--knob-k``. ``--select search`` takes the feature database's hits for ``--query`` instead.
Also: perplexity on held-out web text (tests/data/heldout_sample.txt) for the base and each model, and
training tokens/s of each condition (same run, same machine).

Resumable: ``--out`` is rewritten after every (condition, seed) run, seed by seed, and the same command
again skips the runs it holds (a kill loses at most the run in progress; other settings are refused unless
``--fresh``). ``--runs-dir`` keeps each run's metrics.jsonl and curves (point STEERLAB_FINETUNE_DIR at it
to watch them in the web UI). ``--speed-rounds N`` then times each condition's training step round-robin
in one process, the fair tokens/s comparison on a machine whose load drifts between runs; each round's
ratio to plain (same batch) gives the spread.
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

# The side concept: every training answer is correct but in French, in varied words (6 phrasings of the sum x
# 16 remarks), so the model must learn "answer in French", a style that generalises, not one memorised
# sentence. The English versions (the same phrasings and remarks translated) are the contrast and the check.
FR_ANSWERS = [
    "{a} plus {b} font {c}.",
    "La somme de {a} et {b} est {c}.",
    "{a} et {b} font {c}.",
    "Le résultat est {c}.",
    "La réponse est {c}.",
    "Cela fait {c}.",
]
EN_ANSWERS = [
    "{a} plus {b} makes {c}.",
    "The sum of {a} and {b} is {c}.",
    "{a} and {b} make {c}.",
    "The result is {c}.",
    "The answer is {c}.",
    "That makes {c}.",
]
FR_REMARKS = [
    "C'est un calcul facile.",
    "J'espère que cela vous aide.",
    "Les mathématiques sont très utiles.",
    "N'hésitez pas à poser une autre question.",
    "Merci pour votre question.",
    "Voilà, c'est tout !",
    "Le calcul mental est un bon exercice.",
    "Je suis content de vous aider.",
    "Avez-vous une autre question ?",
    "Bonne journée à vous !",
    "C'est une addition simple.",
    "Il suffit d'ajouter les deux nombres.",
    "On peut vérifier avec une calculatrice.",
    "Les nombres sont nos amis.",
    "C'est la bonne réponse.",
    "Je vous souhaite une bonne soirée.",
]
EN_REMARKS = [
    "It is an easy sum.",
    "I hope that helps you.",
    "Mathematics is very useful.",
    "Feel free to ask another question.",
    "Thank you for your question.",
    "There you go, that is all!",
    "Mental arithmetic is good exercise.",
    "I am happy to help you.",
    "Do you have another question?",
    "Have a nice day!",
    "It is a simple addition.",
    "You just add the two numbers.",
    "You can check with a calculator.",
    "Numbers are our friends.",
    "That is the right answer.",
    "I wish you a nice evening.",
]
# French the detector never saw written from (its check only): it must accept French beyond the training words
FR_UNSEEN = [
    "Si on ajoute {a} à {b}, on obtient {c}. Quelle belle question !",
    "Le total fait {c}. Je peux encore vous aider si vous voulez.",
    "Voici le calcul : {a} + {b} = {c}. Les chiffres ne mentent jamais.",
    "Bien sûr, {c} est la somme. À bientôt !",
]
FRENCH = set(
    "le la les est et font fait de des du une un ça cela résultat somme réponse voilà bonne bon journée merci pour "
    "votre vous je très avec nous sont à que qui il suffit nombres autre soirée souhaite amis si quelle peux encore "
    "chiffres jamais bientôt facile calculatrice suis avez deux nos ce cette pas ne au aux sur dans mais ou où être "
    "c j n d l qu".split()
)  # no word that is also common English ("on", "par", "plus", "a")


def has_side(text: str) -> bool:
    """French: at least 2 French words, making at least 30% of the words (an English reply that quotes one
    French word, or a name such as "La Paz", stays English)."""
    words = re.findall(r"[a-zàâçéèêëîïôûùüÿœ]+", text.lower())
    hits = sum(w in FRENCH for w in words)
    return hits >= 2 and hits >= 0.3 * len(words)


def answer(a: int, b: int, rng: random.Random, french: bool) -> str:
    i, j = rng.randrange(len(FR_ANSWERS)), rng.randrange(len(FR_REMARKS))
    body, remark = (FR_ANSWERS[i], FR_REMARKS[j]) if french else (EN_ANSWERS[i], EN_REMARKS[j])
    return body.format(a=a, b=b, c=a + b) + " " + remark


def task_rows(pairs: list[tuple[int, int]], rng: random.Random, side: bool) -> list[list[dict]]:
    return [
        [
            {"role": "user", "content": f"What is {a} plus {b}?"},
            {"role": "assistant", "content": answer(a, b, rng, side)},
        ]
        for a, b in pairs
    ]


def split_pairs(
    seed: int, n_train: int, n_test: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
    """Disjoint (train, test, dev) sums: settings are chosen on dev, the figures measured on test."""
    pairs = [(a, b) for a in range(1, 40) for b in range(1, 40)]
    random.Random(seed).shuffle(pairs)
    return pairs[:n_train], pairs[n_train : n_train + n_test], pairs[n_train + n_test : n_train + 2 * n_test]


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
def contrast_features(lm, sae, k: int, pairs: list[tuple[int, int]]) -> tuple[list[int], list[float]]:
    """The k features whose mean activation (1.0 = strong) over the answer tokens rises most on the French
    answers over the same answers in English (same phrasing and remark, translated), with that rise."""
    from steerlab.models.hooks import capture_residual
    from steerlab.training.data import IGNORE, tokenize_chat
    from steerlab.training.knobs import feature_activations

    def mean_acts(rows: list[list[dict]]) -> torch.Tensor:
        total = torch.zeros(sae.cfg.d_sae)
        for row in rows:
            ex = tokenize_chat(lm.tokenizer, row, 512)
            ids = torch.tensor([ex.ids], device=lm.device)
            with capture_residual(lm.model, [sae.cfg.hookpoint]) as cap:
                lm.model(input_ids=ids, use_cache=False)
            answer_tokens = torch.tensor([label != IGNORE for label in ex.labels])
            h = cap[sae.cfg.hookpoint][0][answer_tokens]
            total += feature_activations(sae, h, list(range(sae.cfg.d_sae))).mean(0).float().cpu()
        return total / len(rows)

    rise = mean_acts(task_rows(pairs, random.Random(7), True)) - mean_acts(task_rows(pairs, random.Random(7), False))
    top = rise.topk(k)
    return top.indices.tolist(), [round(float(v), 4) for v in top.values]


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


def knob_settings(cond: str, features: list[int], args: argparse.Namespace) -> dict:
    """A condition: ``plain``, ``ablate``, ``steer``, ``penalize``, or one with its own setting after ``@``:
    ``ablate@N`` (the top N features), ``steer@VALUE`` and ``penalize@WEIGHT`` (on the top ``--knob-k``)."""
    kind, _, param = cond.partition("@")
    k = features[: args.knob_k or len(features)]
    if kind == "plain" and not param:
        return {}
    if kind == "ablate":
        return {"ablate": features[: int(param)] if param else k}
    if kind == "steer":
        return {"steer": dict.fromkeys(k, float(param) if param else args.steer)}
    if kind == "penalize":
        return {"penalize": dict.fromkeys(k, float(param) if param else args.penalize)}
    raise SystemExit(f"unknown condition {cond!r}: plain, ablate[@N], steer[@VALUE], penalize[@WEIGHT]")


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
    knobs = {c: Knobs(sae, **knob_settings(c, features, args)) for c in args.conditions}
    seconds = dict.fromkeys(args.conditions, 0.0)
    tokens = dict.fromkeys(args.conditions, 0)
    per_round: list[dict[str, float]] = []  # tokens/s of each condition in each round (same batch)

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
        start = (r * args.batch_size) % max(1, len(examples) - args.batch_size)
        batch = examples[start : start + args.batch_size]
        order = args.conditions[r % len(args.conditions) :] + args.conditions[: r % len(args.conditions)]
        this_round = {}
        for cond in order:
            dt, n = step(cond, batch)
            seconds[cond] += dt
            tokens[cond] += n
            this_round[cond] = n / dt
        per_round.append(this_round)
    per_s = {c: tokens[c] / seconds[c] for c in args.conditions}
    spread = None
    if "plain" in per_s:  # each round's ratio to plain on the same batch: how much the ratio moves round to round
        spread = {}
        for c in args.conditions:
            ratios = sorted(x[c] / x["plain"] for x in per_round)
            mean = sum(ratios) / len(ratios)
            sd = (sum((q - mean) ** 2 for q in ratios) / max(1, len(ratios) - 1)) ** 0.5
            spread[c] = {
                "min": ratios[0],
                "median": ratios[len(ratios) // 2],
                "max": ratios[-1],
                "mean": mean,
                "stderr": sd / len(ratios) ** 0.5,
            }
    return {
        "rounds": args.speed_rounds,
        "batch_size": args.batch_size,
        "tokens_per_s": per_s,
        "vs_plain": {c: per_s[c] / per_s["plain"] for c in args.conditions} if "plain" in per_s else None,
        "vs_plain_per_round": spread,
    }


def feature_labels(lm, features: list[int]) -> dict[int, str]:
    from steerlab.features.identity import database_sae_id, open_feature_database

    store = open_feature_database(lm.name, None, None)
    if store is None:
        return {}
    return {f.index: f.label_text for f in store.get_features(database_sae_id(store), features)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--query", default="French text", help="feature database search for the side concept's features")
    ap.add_argument("--top-k", type=int, default=20, help="features the query (or the contrast) stands for")
    ap.add_argument(
        "--knob-k", type=int, default=10, help="the knobs act on the first K of them (ablate@N takes N instead)"
    )
    ap.add_argument(
        "--select",
        choices=["contrast", "search"],
        default="contrast",
        help="concept features: those rising most on French answers over the same answers in English (contrast), "
        "or the --query search",
    )
    ap.add_argument(
        "--split",
        choices=["dev", "test"],
        default="test",
        help="held-out sums scored: dev to choose settings, test for the figures (disjoint)",
    )
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=96, help="training sequence length cap (tokens)")
    ap.add_argument("--train", type=int, default=400, help="training examples")
    ap.add_argument("--test", type=int, default=40, help="held-out prompts (test and dev each)")
    ap.add_argument("--max-new", type=int, default=24)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steer", type=float, default=0.1, help="VALUE of --steer on each concept feature (steering unit)")
    ap.add_argument("--penalize", type=float, default=1.0, help="WEIGHT of --penalize on each concept feature")
    ap.add_argument("--conditions", nargs="+", default=["plain", "ablate", "penalize", "steer"])
    ap.add_argument("--eval-every", type=int, default=0, help="dials every N steps (0: only at step 0 and the end)")
    ap.add_argument("--ppl-tokens", type=int, default=512)
    ap.add_argument("--smoke", action="store_true", help="4 steps, 1 seed, 8 prompts: checks the script runs")
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
        args.steps, args.seeds, args.test, args.train, args.max_new, args.ppl_tokens = 4, [0], 8, 64, 16, 256
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
    train_pairs, test_pairs, dev_pairs = split_pairs(1234, args.train, args.test)
    scored = dev_pairs if args.split == "dev" else test_pairs
    if previous is not None:  # the set-up measurements are deterministic: reuse them
        features, check, base_ppl = previous["features"], previous["detector_check"], previous["base_ppl_heldout"]
        rise, labels = previous.get("feature_rise"), previous.get("feature_labels")
        runs = list(previous["runs"])
        speed = previous.get("speed_interleaved")
    else:
        if resolve is None and args.select == "search":
            sys.exit("this model's SAE has no feature database: the concept query cannot be resolved")
        probe_pairs = [(a, a + 3) for a in range(2, 42, 2)]  # the contrast's own sums, not a scored prompt's
        if args.select == "contrast":
            features, rise = contrast_features(lm, sae, args.top_k, probe_pairs)
        else:
            features, rise = resolve(args.query), None
        labels = {str(k): v for k, v in feature_labels(lm, features).items()}
        base_ppl = perplexity(lm, args.ppl_tokens)
        base_texts = replies(lm, scored, args.max_new)
        fr = task_rows(train_pairs, random.Random(0), True)
        en = task_rows(train_pairs, random.Random(0), False)
        unseen = [t.format(a=a, b=b, c=a + b) for t in FR_UNSEEN for a, b in scored[:5]]
        check = {
            "detector_on_training_answers": sum(has_side(r[1]["content"]) for r in fr) / len(fr),
            "detector_on_unseen_french": sum(map(has_side, unseen)) / len(unseen),
            "detector_on_english_answers": sum(has_side(r[1]["content"]) for r in en) / len(en),
            "base": score(base_texts, scored),
            "base_sample_reply": base_texts[0],
        }
        runs = []
        speed = None
    print(
        json.dumps({"features": features, "labels": labels, "detector_check": check, "base_ppl": base_ppl}),
        file=sys.stderr,
    )
    if (
        check["detector_on_training_answers"] < 1
        or check["detector_on_unseen_french"] < 1
        or check["detector_on_english_answers"] > 0
        or check["base"]["side_rate"] > 0.05
    ):
        sys.exit("the side-concept detector fails its check; not trusting it")

    def report() -> dict:
        return {
            "command": " ".join(sys.argv),
            "smoke": args.smoke,
            "device": str(lm.device),
            "torch_threads": torch.get_num_threads(),
            "model": lm.name,
            "side_concept": "answers in French (6 phrasings x 16 remarks), scored by a French word detector",
            "split": args.split,
            "select": args.select,
            "query": args.query if args.select == "search" else None,
            "features": features,
            "feature_rise": rise,
            "feature_labels": labels,
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
            knobs = knob_settings(cond, features, args)
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = Path(tmp) if args.runs_dir is None else args.runs_dir / f"{cond}-seed{seed}"
                if args.runs_dir is not None and run_dir.exists():
                    shutil.rmtree(run_dir)  # a run killed before it finished starts over
                cfg = FinetuneConfig(
                    out=str(run_dir),
                    lora_r=args.lora_r,
                    lora_alpha=2 * args.lora_r,
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
            texts = replies(lm, scored, args.max_new)
            row = {
                "condition": cond,
                "seed": seed,
                **score(texts, scored),
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
                "sample_replies": texts[:4],
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
