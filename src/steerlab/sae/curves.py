"""The training log: ``metrics.jsonl`` (one JSON object per logged step) and a PNG of it.

JSON lines survive a kill mid-write (at worst a torn last line, which readers skip) and are
trivial to load in a notebook. On resume the log is cut back to the checkpoint's step, so
it never shows a stretch of training that the resumed run then redoes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PANELS = (
    ("fvu", "FVU", True),
    ("l0", "L0 (active latents / token)", False),
    ("dead_fraction", "dead fraction", False),
    ("lr", "learning rate", False),
)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All well-formed records of a metrics.jsonl (a torn last line is ignored)."""
    if not Path(path).is_file():
        return []
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def truncate_metrics(path: Path, max_step: int) -> None:
    """Keep only records with ``step <= max_step`` (rewritten atomically)."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [r for r in read_metrics(path) if int(r.get("step", 0)) <= max_step]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(tmp, path)


def plot_training_curves(metrics_path: Path, png_path: Path) -> None:
    """Write FVU, L0, dead fraction and lr against tokens to ``png_path`` (atomically)."""
    records = read_metrics(metrics_path)
    if not records:
        return
    # The object API with an explicit Agg canvas never touches pyplot's global backend,
    # so plotting from a notebook or a server thread is safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tokens = [r["tokens"] for r in records]
    fig = Figure(figsize=(10, 6.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex=True)
    for ax, (key, title, log_y) in zip(axes.flat, PANELS):
        ys = [r.get(key) for r in records]
        pairs = [(t, y) for t, y in zip(tokens, ys) if y is not None]
        if pairs:
            ax.plot(*zip(*pairs), lw=1.2)
        if log_y and pairs and min(y for _, y in pairs) > 0:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("tokens")
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.09, top=0.95, wspace=0.22, hspace=0.3)
    png_path = Path(png_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{png_path.stem}.", suffix=".png", dir=png_path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, png_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
