"""The shipped jailbreak classifier vs an earlier one (from git) on the built-in task's held-out sources.

    PYTHONPATH=src python benchmarks/classifier_vs_previous.py --previous ec74510

Scores both from the per-text feature cache that scripts/build_default_classifier.py fills (texts not
cached are read through the model): ``sigmoid(x[pool][indices] . weights + bias)`` for SAE classifiers.
Prints JSON: AUROC, the share of ordinary prompts flagged and of jailbreaks caught at 0.5 and 0.9, and
for the shipped one the features that push each held-out source's ordinary prompts up the most.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from steerlab.bundled_saes import bundled_sae_path
from steerlab.classifiers import metrics
from steerlab.classifiers.tasks import build_task
from steerlab.engine.lab import Lab

ROOT = Path(__file__).resolve().parents[1]
REL = "src/steerlab/assets/saes/smollm2-135m-instruct/classifiers/jailbreak"


def _script():
    spec = importlib.util.spec_from_file_location("build", ROOT / "scripts" / "build_default_classifier.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--previous", required=True, help="a git commit holding the earlier shipped classifier")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "classifier_features")
    args = ap.parse_args()
    old = Path(tempfile.mkdtemp())
    for name in ("config.json", "weights.safetensors"):
        blob = subprocess.run(
            ["git", "show", f"{args.previous}:{REL}/{name}"], cwd=ROOT, capture_output=True, check=True
        )
        (old / name).write_bytes(blob.stdout)
    lab = Lab.load("default", max_batch=1)
    extract = _script().cached_features(args.cache)
    task = build_task("jailbreak")
    out: dict = {}
    try:
        shipped = bundled_sae_path(lab.model_name) / "classifiers" / "jailbreak"
        for name, folder in ((f"previous ({args.previous})", old), ("shipped", shipped)):
            cfg = json.loads((folder / "config.json").read_text())
            w = load_file(str(folder / "weights.safetensors"))
            out[name] = {"pool": cfg["pool"], "n_features": len(w["weights"])}
            for src, exs in task.heldout.items():
                x = extract(lab, [e.text for e in exs], cfg["max_tokens"]).sae[cfg["pool"]][:, w["indices"].astype(int)]
                prob = 1 / (1 + np.exp(-(x @ w["weights"] + cfg["bias"])))
                y = np.array([e.label for e in exs])
                row = {"auroc": round(metrics.auroc(y, prob), 4)}
                for t in (0.5, 0.9):
                    row[f"ordinary_flagged_at_{t}"] = round(float((prob[y == 0] >= t).mean()), 4)
                    row[f"jailbreaks_caught_at_{t}"] = round(float((prob[y == 1] >= t).mean()), 4)
                if name == "shipped":
                    contrib = (x[y == 0] * w["weights"]).mean(0)
                    row["ordinary_top_contributions"] = [
                        {
                            "index": int(w["indices"][i]),
                            "label": cfg["labels"].get(str(int(w["indices"][i])), ""),
                            "mean_contribution": round(float(contrib[i]), 3),
                        }
                        for i in np.argsort(-contrib)[:8]
                    ]
                out[name][src] = row
    finally:
        lab.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
