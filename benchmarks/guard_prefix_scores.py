"""Why a guard aborts a prompt that the classifier, on the whole text, does not flag: the running score
of the shipped jailbreak classifier over the first held-out cloze prompts, token by token (what
``abort_when(classifier("jailbreak") > 0.9)`` sees), vs its score on the whole text.

    PYTHONPATH=src python benchmarks/guard_prefix_scores.py [--n 2]

Prints JSON per prompt: the content tokens (counted from 0) where the running score is above 0.9 from
the 16th on (``STEERLAB_GUARD_MIN_TOKENS``), the running scores of content tokens 16-40, the final running
score and the classifier's own score of the text.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace

import torch

from steerlab.classifiers.tasks import build_task
from steerlab.engine.lab import Lab
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.steering import Variant, classifier
from steerlab.steering.conversation import conversation_ids
from steerlab.steering.probes import ProbePool


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2)
    args = ap.parse_args()
    lab = Lab.load("default", max_batch=1)
    v = Variant("default")
    v.abort_when(classifier("jailbreak") > 0.9)
    probe = replace(lab.condition_probes(v.controller)["jailbreak"], min_tokens=1)
    prompts = [e for e in build_task("jailbreak").heldout["cloze"] if e.label == 0][: args.n]
    out = []
    try:
        for e in prompts:
            ids = conversation_ids(lab.lm.tokenizer, [{"role": "user", "content": e.text}])
            with torch.inference_mode():
                hidden = forward_to_hookpoint(lab.lm.model, torch.tensor([ids]), lab.sae.cfg.hookpoint)[0]
                scores = [float(x) for x in ProbePool().update(probe, probe.inputs(hidden, lab.sae.encode(hidden)))]
            c0 = next(i for i, x in enumerate(scores) if not math.isnan(x))  # the first content token
            content = scores[c0:]
            over = [i for i, x in enumerate(content) if i >= 15 and x > 0.9]
            out.append(
                {
                    "prompt": e.text[:100],
                    "content_tokens": len(content),
                    "over_0.9_from_token_16": over[:20],
                    "n_over_0.9": len(over),
                    "running_scores_tokens_16_40": [round(x, 3) for x in content[15:40]],
                    "final_running_score": round(content[-1], 3),
                    "classifier_score_of_text": round(lab.classify("jailbreak", [e.text])[0]["score"], 3),
                }
            )
    finally:
        lab.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
