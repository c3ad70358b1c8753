"""Steering evaluation: AutoSteer's edits vs a prompting baseline, AxBench-style, over many concepts.

    OMP_NUM_THREADS=1 python benchmarks/steering_eval.py --concepts 10 --prompts 4 --tokens 32

For each concept, AutoSteer picks features and strengths from the goal text alone (on its own
scoring prompts); then ``steering_eval.evaluate_steering`` scores steered, prompted (a system prompt
asking for the concept) and unsteered replies to *held-out* prompts (``EVAL_PROMPTS``): concept
presence (sentence-embedding gain over the unsteered replies, or a word list, whichever is larger),
instruction relevance, fluency (perplexity under the unsteered model, repetition-penalised), and
their harmonic mean (0 if any part is 0). Prints a readable table, then JSON with per-concept
figures, the mean combined score of both methods and their ratio (steered / prompted).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

# French function words that Spanish, Italian and Portuguese do not share (no "la", "que", "un", "de"):
# over-steered replies in Romance-flavoured word salad must not count as French.
FRENCH = (
    "le les des est une et dans pour qui pas sur avec du au ce il elle nous vous je tu mais très "
    "bien avez suis sont être faire plus aux cette"
).split()
CONCEPTS = [
    (
        "pirate",
        "pirate speech: arr, matey, ahoy, ships and treasure",
        "talk like a pirate",
        "arr arrr matey mateys ahoy aye ye yer pirate pirates treasure ship ships captain sail crew plunder grog "
        "sea seas buccaneer hearty".split(),
    ),
    ("french", "text written in French", "speak French", FRENCH),
    (
        "formal",
        "formal, polite, professional language",
        "be very formal and polite",
        "sir madam kindly regards sincerely furthermore therefore hence shall respectfully pleased moreover "
        "thus accordingly indeed".split(),
    ),
    (
        "food",
        "cooking and food",
        "talk about food",
        "food cook cooking recipe recipes delicious eat eating dish dishes flavor flavour taste kitchen bake "
        "meal meals bread cheese sauce".split(),
    ),
    (
        "weather",
        "the weather: rain, sun, wind and clouds",
        "talk about the weather",
        "weather rain rainy sun sunny cloud clouds cloudy wind windy storm snow temperature forecast".split(),
    ),
    (
        "dogs",
        "dogs and puppies",
        "talk about dogs",
        "dog dogs puppy puppies bark barking leash paw paws fetch canine pup".split(),
    ),
    (
        "space",
        "outer space, planets and stars",
        "talk about outer space",
        "space planet planets star stars galaxy moon orbit astronaut universe rocket cosmic nasa".split(),
    ),
    (
        "music",
        "music and songs",
        "talk about music",
        "music song songs melody guitar piano sing singing rhythm band concert notes musical".split(),
    ),
    (
        "joy",
        "joyful, enthusiastic, happy tone",
        "be very enthusiastic and happy",
        "happy joy love wonderful amazing excited exciting great fantastic delighted awesome yay".split(),
    ),
    (
        "sadness",
        "sad, gloomy, melancholic tone",
        "be sad and gloomy",
        "sad sorrow gloomy tears lonely grief melancholy unfortunately miss lost dark despair".split(),
    ),
    (
        "fantasy",
        "dragons, knights and castles",
        "talk about dragons and knights",
        "dragon dragons knight knights castle castles sword king queen kingdom quest wizard".split(),
    ),
    (
        "sports",
        "football and sports",
        "talk about football",
        "football soccer goal goals team match player players ball score league coach".split(),
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--concepts", type=int, default=10, help=f"How many concepts (up to {len(CONCEPTS)}).")
    ap.add_argument("--prompts", type=int, default=4, help="Held-out evaluation prompts per concept.")
    ap.add_argument("--tokens", type=int, default=32, help="Reply length for the evaluation.")
    ap.add_argument("--only", default=None, help="Comma-separated concept names to run (default: the first N).")
    ap.add_argument("--model", default="default")
    ap.add_argument("--json-out", default=None, help="Also write the JSON to this file.")
    args = ap.parse_args()

    from steerlab.analysis.autosteer import AutoSteerConfig, auto_steer
    from steerlab.analysis.steering_eval import EVAL_PROMPTS, Concept, evaluate_steering
    from steerlab.models.loader import load_model
    from steerlab.sae.bundled import load_sae_for

    lm = load_model(args.model)
    sae = load_sae_for(lm)
    config = AutoSteerConfig()
    prompts = EVAL_PROMPTS[: args.prompts]
    rows, started = [], time.perf_counter()
    chosen = [c for c in CONCEPTS if c[0] in args.only.split(",")] if args.only else CONCEPTS[: args.concepts]
    for name, description, instruction, words in chosen:
        concept = Concept(name, description, instruction, words)
        t0 = time.perf_counter()
        steer = auto_steer(lm, sae, concept.goal, config=config)
        t1 = time.perf_counter()
        result = evaluate_steering(lm, sae, concept, steer, prompts, max_new_tokens=args.tokens)
        row = result.to_dict()
        row.update(
            autosteer_s=round(t1 - t0, 1),
            eval_s=round(time.perf_counter() - t1, 1),
            autosteer_score=round(steer.best.score, 3),
            autosteer_unsteered=round(steer.unsteered.score, 3),
        )
        rows.append(row)
        print(
            f"{name}: steered {row['methods']['steered']['combined']:.3f} prompted "
            f"{row['methods']['prompted']['combined']:.3f} ({row['autosteer_s']}s + {row['eval_s']}s)",
            file=sys.stderr,
            flush=True,
        )

    steered = sum(r["methods"]["steered"]["combined"] for r in rows) / len(rows)
    prompted = sum(r["methods"]["prompted"]["combined"] for r in rows) / len(rows)
    print_table(rows)
    report = {
        "model": lm.name,
        "concepts": len(rows),
        "prompts": len(prompts),
        "tokens": args.tokens,
        "autosteer_config": vars(config),
        "mean_combined": {"steered": round(steered, 4), "prompted": round(prompted, 4)},
        "ratio_steered_over_prompted": round(steered / prompted, 3) if prompted else None,
        "steered_wins": sum(r["winner"] == "steered" for r in rows),
        "wall_s": round(time.perf_counter() - started, 1),
        "per_concept": rows,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text)


def print_table(rows: list[dict]) -> None:
    head = f"{'concept':10s} {'edits':24s} | {'steered: C   R   F   H':24s} | {'prompted: C   R   F   H':24s} | winner"
    print(head)
    print("-" * len(head))
    for r in rows:
        edits = ",".join(f"{i}@{v:.2g}" for i, v in r["edits"]) or "(none)"
        cells = []
        for method in ("steered", "prompted"):
            m = r["methods"][method]
            cells.append(f"{m['concept']:.2f} {m['relevance']:.2f} {m['fluency']:.2f} {m['combined']:.2f}".rjust(24))
        print(f"{r['concept']:10s} {edits[:24]:24s} | {cells[0]} | {cells[1]} | {r['winner']}")
    print()


if __name__ == "__main__":
    main()
