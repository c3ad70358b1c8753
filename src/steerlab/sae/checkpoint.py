"""Trainer checkpoints: everything needed to continue a run bit-for-bit, without pickle.

A checkpoint is a folder ``checkpoints/step_XXXXXXX/`` holding the training-time SAE in our
normal format (``SAE.load`` opens it; with ``normalize_input`` it reads activations multiplied
by ``trainer.json``'s ``input_scale``, which only the final ``sae/`` has folded in), the Adam
moments (``optimizer.safetensors``),
the trainer's tensors (``trainer.safetensors``: dead-latent counters, RNG state) and its
scalars (``trainer.json``: step, tokens seen, input scale, the TrainConfig). The learning rate
is a pure function of the step, so there is no scheduler object to store. Folders are
written atomically and only the newest ``keep`` survive.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from steerlab.errors import ConflictError
from steerlab.sae.base import SAE
from steerlab.sae.steerlab_format import load_steerlab, write_sae_files
from steerlab.sae.storage import (
    SAEFormatError,
    atomic_dir,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)

_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass
class TrainerState:
    """The trainer's own progress, besides weights and optimizer moments."""

    tokens_since_fired: Tensor  # [d_sae] int64, for dead-latent detection
    step: int = 0
    tokens: int = 0
    input_scale: float = 1.0  # activations are multiplied by this before the SAE sees them
    elapsed_s: float = 0.0  # training wall time so far (for rates across restarts)
    rng_state: Tensor | None = None  # trainer Generator state (uint8)
    massive_tokens: int = 0  # tokens of the stream left out as massive activations (activations/massive.py)


def checkpoint_root(out_dir: Path) -> Path:
    return Path(out_dir) / "checkpoints"


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Checkpoint folders of a run, oldest first."""
    root = checkpoint_root(out_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(
    out_dir: Path,
    sae: SAE,
    optimizer: torch.optim.Optimizer,
    state: TrainerState,
    train_config: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write a checkpoint for ``state.step`` and prune all but the newest ``keep``."""
    path = checkpoint_root(out_dir) / f"step_{state.step:07d}"
    names = {id(p): n for n, p in sae.named_parameters()}
    moments: dict[str, Tensor] = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, Tensor):
                    moments[f"{names[id(param)]}.{key}"] = value
    with atomic_dir(path) as tmp:
        write_sae_files(sae, tmp)
        save_tensors(tmp / "optimizer.safetensors", moments)
        trainer_tensors = {"tokens_since_fired": state.tokens_since_fired}
        if state.rng_state is not None:
            trainer_tensors["rng_state"] = state.rng_state
        save_tensors(tmp / "trainer.safetensors", trainer_tensors)
        write_json(
            tmp / "trainer.json",
            {
                "step": state.step,
                "tokens": state.tokens,
                "input_scale": state.input_scale,
                "elapsed_s": state.elapsed_s,
                "massive_tokens": state.massive_tokens,
                "train_config": train_config,
            },
        )
    for old in list_checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: Path, sae: SAE, optimizer: torch.optim.Optimizer) -> tuple[TrainerState, dict[str, Any]]:
    """Restore weights and Adam moments in place; return the trainer state and the
    TrainConfig dict the checkpoint was written with."""
    saved = load_steerlab(path, device=sae.W_enc.device, dtype=sae.W_enc.dtype)
    ours = sae.cfg.to_dict()
    diff = sorted(k for k, v in saved.cfg.to_dict().items() if k != "extra" and ours.get(k) != v)
    if diff:
        raise ConflictError(f"{path}: checkpoint was trained with a different SAEConfig (fields: {', '.join(diff)})")
    sae.load_state_dict(saved.state_dict())  # copies in place: the optimizer keeps its params
    moments = load_tensors(path / "optimizer.safetensors")
    params = dict(sae.named_parameters())
    opt_state = optimizer.state_dict()
    index = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            index[id(param)] = len(index)
    new_state: dict[int, dict[str, Tensor]] = {}
    for key, value in moments.items():
        pname, _, field = key.rpartition(".")
        if pname not in params:
            raise SAEFormatError(f"{path / 'optimizer.safetensors'}: unknown parameter {pname!r}")
        new_state.setdefault(index[id(params[pname])], {})[field] = value
    opt_state["state"] = new_state
    optimizer.load_state_dict(opt_state)
    tensors = load_tensors(path / "trainer.safetensors")
    meta = read_json(path / "trainer.json")
    state = TrainerState(
        step=int(meta["step"]),
        tokens=int(meta["tokens"]),
        input_scale=float(meta["input_scale"]),
        elapsed_s=float(meta.get("elapsed_s", 0.0)),
        massive_tokens=int(meta.get("massive_tokens", 0)),
        tokens_since_fired=tensors["tokens_since_fired"].to(sae.W_enc.device),
        rng_state=tensors.get("rng_state"),
    )
    return state, meta.get("train_config", {})
