"""Fine-tuning runs on disk, read for the server's view of their dials (``GET /v1/finetune/runs``).

A run is a folder directly under one allowed root (``Settings.finetune_dir``, default
``STEERLAB_HOME/finetune``) holding the ``metrics.jsonl`` that ``steerlab finetune --out ROOT/NAME``
writes. Nothing outside the root is ever read: a run is named by one folder name (no separators, no
``..``), and the folder and its files must still lie under the root once symlinks are resolved; anything
else answers "no such run", exactly as a missing one does. Reading is streamed and bounded: a very long
run's train rows are thinned to at most ``MAX_TRAIN_POINTS`` (evenly, the last one always kept), lines
that do not parse (a run killed mid-write) are skipped and counted, and numbers that JSON cannot carry
(NaN, inf) become null.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from steerlab.errors import InvalidInputError, NotFoundError

METRICS = "metrics.jsonl"
RUN_FILE = "run.json"  # what the run was started with (written by Finetuner.run before the first step)
MODEL_DIR = "model"
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NAME_RULE = "one folder name: 1-128 letters, digits, '.', '_' or '-', not starting with '.', '_' or '-'"
MAX_TRAIN_POINTS = 2000
MAX_EVAL_POINTS = 2000
MAX_RUNS = 500
MAX_RUN_FILE_BYTES = 1 << 20
TRAIN_KEYS = ("step", "epoch", "loss", "lr", "tokens_per_s", "penalty")
EVAL_KEYS = ("step", "eval_loss", "sae_fvu", "sae_ce_loss_score")


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop, an unreadable component
        return False


def run_path(root: Path, name: str) -> Path:
    """The folder of run ``name`` under ``root``, checked: InvalidInputError for a name that is not one
    plain folder name, NotFoundError for anything that is not a run inside the root."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or ".." in name:
        raise InvalidInputError(f"not a run name: {name[:60]!r}", field="name", allowed=NAME_RULE)
    base = root.resolve()
    path = base / name
    if not (path.is_dir() and _inside(path, base) and (path / METRICS).is_file() and _inside(path / METRICS, base)):
        raise NotFoundError(f"no fine-tuning run named {name!r}", field="name")
    return path.resolve()


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _pick(row: dict, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: _number(row[k]) for k in keys if k in row}


def _features(value: Any) -> dict[str, float | None]:
    if not isinstance(value, dict):
        return {}
    return {str(k): _number(v) for k, v in value.items() if str(k).isdigit()}


def _thin(rows: list[dict], limit: int) -> list[dict]:
    """Every other row once the list passes twice the limit (memory stays bounded while streaming)."""
    return rows[::2] if len(rows) > 2 * limit else rows


def _read_json(path: Path, root: Path) -> dict | None:
    if not (path.is_file() and _inside(path, root)) or path.stat().st_size > MAX_RUN_FILE_BYTES:
        return None
    try:
        value = json.loads(path.read_text())
    except (ValueError, OSError):
        return None
    return value if isinstance(value, dict) else None


def read_run(root: Path, name: str) -> dict[str, Any]:
    """Run ``name``'s curves: train rows (step, loss, lr, tokens/s, penalty; thinned past
    ``MAX_TRAIN_POINTS``), eval rows (eval loss, the watched features' mean activations, the SAE's FVU and
    CE-loss score), what it was started with (``run.json``, if there), and whether it finished."""
    path = run_path(root, name)
    base = root.resolve()
    train: list[dict] = []
    evals: list[dict] = []
    skipped = 0
    stride_train = stride_eval = 1
    seen_train = seen_eval = 0
    last_train: dict | None = None
    with (path / METRICS).open("rb") as f:
        for raw in f:
            try:
                row = json.loads(raw)
            except ValueError:
                skipped += int(bool(raw.strip()))
                continue
            if not isinstance(row, dict) or _number(row.get("step")) is None:
                skipped += 1
                continue
            if row.get("kind") == "train":
                last_train = _pick(row, TRAIN_KEYS)
                if seen_train % stride_train == 0:
                    train.append(last_train)
                seen_train += 1
                if len(train) > 2 * MAX_TRAIN_POINTS:
                    train, stride_train = _thin(train, MAX_TRAIN_POINTS), stride_train * 2
            elif row.get("kind") == "eval":
                if seen_eval % stride_eval == 0:
                    evals.append(_pick(row, EVAL_KEYS) | {"features": _features(row.get("features"))})
                seen_eval += 1
                if len(evals) > 2 * MAX_EVAL_POINTS:
                    evals, stride_eval = _thin(evals, MAX_EVAL_POINTS), stride_eval * 2
            else:
                skipped += 1
    if last_train is not None and (not train or train[-1] is not last_train):
        train.append(last_train)  # the latest step is always shown
    config = _read_json(path / RUN_FILE, base)
    return {
        "name": name,
        "config": config,
        "finished": (path / MODEL_DIR).is_dir(),
        "train": train,
        "evals": evals,
        "train_rows": seen_train,
        "train_stride": stride_train,
        "skipped_lines": skipped,
    }


def list_runs(root: Path) -> list[dict[str, Any]]:
    """The runs directly under ``root`` (newest first, at most ``MAX_RUNS``): name, when the metrics last
    changed, the last step and the planned total (when ``run.json`` says), the knobs, whether finished."""
    base = root.resolve()
    if not base.is_dir():
        return []
    found = []
    for child in base.iterdir():
        if not RUN_NAME.fullmatch(child.name) or ".." in child.name:
            continue
        try:
            path = run_path(base, child.name)
            mtime = (path / METRICS).stat().st_mtime
        except (NotFoundError, OSError):
            continue
        found.append((mtime, child.name, path))
    found.sort(key=lambda t: (-t[0], t[1]))
    runs = []
    for mtime, name, path in found[:MAX_RUNS]:
        config = _read_json(path / RUN_FILE, base) or {}
        cfg = config.get("finetune") if isinstance(config.get("finetune"), dict) else {}
        runs.append(
            {
                "name": name,
                "updated": mtime,
                "last_step": _last_step(path / METRICS),
                "total_steps": _number(config.get("total_steps")),
                "base_model": config.get("base_model") if isinstance(config.get("base_model"), str) else None,
                "knobs": {k: cfg.get(k) for k in ("ablate", "steer", "penalize", "watch") if cfg.get(k)},
                "finished": (path / MODEL_DIR).is_dir(),
            }
        )
    return runs


def _last_step(metrics: Path, tail_bytes: int = 16384) -> int | None:
    """The step of the last complete row (read from the file's tail only)."""
    with metrics.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - tail_bytes))
        lines = f.read().splitlines()
    for raw in reversed(lines):
        try:
            row = json.loads(raw)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            return row["step"]
    return None
