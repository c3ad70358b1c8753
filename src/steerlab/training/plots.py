"""metrics.jsonl rows -> curves.png: losses, learning rate, watched features, and the SAE's fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_metrics(rows: list[dict[str, Any]], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    ax = axes[0][0]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", alpha=0.6)
    ev = [r for r in evals if "eval_loss" in r]
    ax.plot([r["step"] for r in ev], [r["eval_loss"] for r in ev], "o-", label="eval loss")
    ax.set_title("loss (assistant tokens)")
    ax.set_xlabel("step")
    ax.legend()
    ax = axes[0][1]
    ax.plot([r["step"] for r in train], [r["lr"] for r in train])
    ax.set_title("learning rate")
    ax.set_xlabel("step")
    ax = axes[1][0]
    features = sorted({f for r in evals for f in r.get("features", {})}, key=int)
    for f in features:
        pts = [(r["step"], r["features"][f]) for r in evals if f in r.get("features", {})]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"feature {f}")
    ax.set_title("watched features: mean activation on the probe set (1.0 = strong)")
    ax.set_xlabel("step")
    if features:
        ax.legend(fontsize=8)
    ax = axes[1][1]
    ax.plot([r["step"] for r in evals], [r["sae_fvu"] for r in evals], "o-", label="FVU")
    ax.plot([r["step"] for r in evals], [r["sae_ce_loss_score"] for r in evals], "s-", label="CE-loss score")
    ax.set_title("original SAE on the fine-tuned model")
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png
