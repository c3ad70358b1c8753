"""Supervised fine-tuning with feature knobs and dials: the loop behind ``steerlab finetune``.

LoRA (``peft``) by default, merged into the weights at the end; ``full=True`` trains every weight (small
models). AdamW, linear warmup then cosine decay, gradient clipping. The data order is a pure function of
(seed, step), so a checkpoint (trainable weights + optimizer + scheduler + RNG + step) resumes bit for
bit. Checkpoints are written into a temporary folder and renamed into place: a save that dies (killed,
disk full) leaves the previous checkpoint as the latest and no half-written one.

Every ``eval_every`` steps: the loss on the eval split, the watched features' mean activation on a fixed
probe set (the model's own residual, knobs off), and how well the original SAE still fits the model
(FVU and CE-loss score at its layer, ``sae.evals.evaluate_sae``). All of it goes to ``metrics.jsonl``
and ``curves.png`` in the output folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from steerlab.errors import ConflictError, InvalidInputError, SteerlabError
from steerlab.training.data import IGNORE, Example
from steerlab.training.knobs import Knobs, feature_activations

if TYPE_CHECKING:
    from steerlab.models.loader import LoadedModel
    from steerlab.sae.base import SAE

CHECKPOINTS = "checkpoints"
MODEL_DIR = "model"
SOURCE_FILE = "steerlab_source.json"  # also written by models/loader.py for converted GGUFs


class CheckpointWriteError(SteerlabError):
    """A checkpoint or the final model could not be written (disk full, permissions); nothing was replaced."""

    status = 507
    code = "storage_full"


@dataclass
class FinetuneConfig:
    out: str
    lora: bool = True
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lr: float = 2e-4
    warmup_steps: int = 10
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 8
    max_len: int = 512
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 50
    save_every: int = 100
    keep_checkpoints: int = 2
    probe_size: int = 16
    seed: int = 0
    ablate: list[int] = field(default_factory=list)
    steer: dict[int, float] = field(default_factory=dict)
    penalize: dict[int, float] = field(default_factory=dict)
    watch: list[int] = field(default_factory=list)

    def check(self) -> None:
        for name in ("lora_r", "epochs", "batch_size", "max_len", "eval_every", "save_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise InvalidInputError("must be at least 1", field=f"--{name.replace('_', '-')}")
        if self.max_steps is not None and self.max_steps < 1:
            raise InvalidInputError("must be at least 1", field="--max-steps")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InvalidInputError("must be a positive number", field="--lr")
        if self.warmup_steps < 0:
            raise InvalidInputError("must be 0 or more", field="--warmup-steps")

    def fingerprint(self, train: list[Example]) -> str:
        """What a checkpoint must agree with to be resumed: everything but where the output goes and when
        to evaluate or save."""
        keep = {
            k: v for k, v in asdict(self).items() if k not in ("out", "eval_every", "save_every", "keep_checkpoints")
        }
        keep["steer"] = sorted(self.steer.items())
        keep["penalize"] = sorted(self.penalize.items())
        h = hashlib.sha256(json.dumps(keep, sort_keys=True).encode())
        for e in train:
            h.update(json.dumps([e.ids, e.labels]).encode())
        return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ batches
def split_examples(examples: list[Example], eval_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded shuffle, then the last ``eval_fraction`` (at least one example when there are two) held out."""
    if not 0 <= eval_fraction < 1:
        raise InvalidInputError("must be in [0, 1)", field="--eval-fraction")
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed)).tolist()
    n_eval = 0 if eval_fraction == 0 or len(examples) < 2 else max(1, round(len(examples) * eval_fraction))
    shuffled = [examples[i] for i in order]
    return shuffled[: len(shuffled) - n_eval], shuffled[len(shuffled) - n_eval :]


def collate(batch: list[Example], pad: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for r, e in enumerate(batch):
        ids[r, : len(e.ids)] = torch.tensor(e.ids)
        labels[r, : len(e.labels)] = torch.tensor(e.labels)
        mask[r, : len(e.ids)] = 1
    return ids.to(device), labels.to(device), mask.to(device)


def batch_for_step(train: list[Example], step: int, batch_size: int, seed: int) -> tuple[int, int, list[Example]]:
    """(epoch, batch index in the epoch, examples) of 0-based ``step``: a pure function (resume needs the step)."""
    per_epoch = math.ceil(len(train) / batch_size)
    epoch, index = divmod(step, per_epoch)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
    return epoch, index, [train[i] for i in order[index * batch_size : (index + 1) * batch_size]]


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over labelled (assistant) tokens, and their count."""
    target = labels[:, 1:]
    n = int((target != IGNORE).sum())
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return loss / max(n, 1), n


def lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


# ------------------------------------------------------------------------------------------------ atomic writes
def write_dir_atomically(final: Path, writer: Callable[[Path], None]) -> Path:
    """``writer(tmp)`` fills a temporary folder next to ``final``, which is then renamed to ``final``.
    Any failure (disk full included) removes the temporary folder and leaves ``final`` as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
    try:
        writer(tmp)
        if final.exists():
            old = final.with_name(f".old-{final.name}-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except OSError as err:
        raise CheckpointWriteError(
            f"could not write {final} ({err.strerror or err}); nothing was replaced", field="--out"
        ) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def checkpoint_dirs(out: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a temporary folder of a save that died is not one)."""
    root = out / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith("step-") and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("step-")))


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------------ the run
class Finetuner:
    """One fine-tuning run of ``lm`` (trained in place) with ``sae``'s features as knobs and dials."""

    def __init__(
        self,
        lm: LoadedModel,
        sae: SAE,
        train: list[Example],
        eval_set: list[Example],
        cfg: FinetuneConfig,
        progress: bool = True,
    ) -> None:
        cfg.check()
        if not train:
            raise InvalidInputError("no training examples left after the eval split", field="--data")
        self.lm, self.sae, self.train, self.eval_set, self.cfg, self.progress = lm, sae, train, eval_set, cfg, progress
        self.out = Path(cfg.out)
        self.knobs = Knobs(sae, cfg.ablate, cfg.steer, cfg.penalize)
        self.watch = cfg.watch or list(dict.fromkeys([*cfg.ablate, *cfg.steer, *cfg.penalize]))
        Knobs(sae, self.watch)  # range check of the watched features
        self.per_epoch = math.ceil(len(train) / cfg.batch_size)
        self.total = cfg.max_steps or cfg.epochs * self.per_epoch
        self.fingerprint = cfg.fingerprint(train)
        probe_src = eval_set or train
        self.probe = [e.ids for e in probe_src[: cfg.probe_size]]
        self.pad = int(lm.tokenizer.pad_token_id or 0)

        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        model = lm.model
        if cfg.lora:
            from peft import LoraConfig, get_peft_model

            lcfg = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
            with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing alias
                warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
                self.peft = get_peft_model(model, lcfg)  # injects adapters into ``model`` in place
        else:
            self.peft = None
            model.requires_grad_(True)
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.optimizer = torch.optim.AdamW(list(self.params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg.warmup_steps, self.total))
        self.step = 0

    @property
    def model(self) -> torch.nn.Module:
        return self.lm.model

    # -------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        def write(tmp: Path) -> None:
            torch.save({n: p.detach().cpu() for n, p in self.params.items()}, tmp / "trainable.pt")
            torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(self.scheduler.state_dict(), tmp / "scheduler.pt")
            torch.save(rng_state(), tmp / "rng.pt")
            epoch, index = divmod(self.step, self.per_epoch)
            state = {"step": self.step, "epoch": epoch, "batch_in_epoch": index, "fingerprint": self.fingerprint}
            (tmp / "state.json").write_text(json.dumps(state))

        path = write_dir_atomically(self.out / CHECKPOINTS / f"step-{self.step:08d}", write)
        for old in checkpoint_dirs(self.out)[: -self.cfg.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def resume(self) -> int | None:
        """Load the latest complete checkpoint, if any; its step, or None."""
        found = checkpoint_dirs(self.out)
        if not found:
            return None
        path = found[-1]
        state = json.loads((path / "state.json").read_text())
        if state.get("fingerprint") != self.fingerprint:
            raise ConflictError(
                f"checkpoint {path} belongs to a run with other data or settings; use another --out, or drop --resume "
                "to start over",
                field="--out",
            )
        weights = torch.load(path / "trainable.pt", map_location="cpu")
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(weights[n])
        self.optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=self.lm.device))
        self.scheduler.load_state_dict(torch.load(path / "scheduler.pt"))
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
        self.step = int(state["step"])
        return self.step

    # -------------------------------------------------------------- evals and dials
    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        from steerlab.models.hooks import capture_residual
        from steerlab.sae.evals import evaluate_sae

        self.model.eval()
        row: dict[str, Any] = {"kind": "eval", "step": self.step}
        if self.eval_set:
            total, count = 0.0, 0
            for i in range(0, len(self.eval_set), self.cfg.batch_size):
                ids, labels, mask = collate(self.eval_set[i : i + self.cfg.batch_size], self.pad, self.lm.device)
                loss, n = lm_loss(self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits, labels)
                total, count = total + float(loss) * n, count + n
            row["eval_loss"] = total / max(count, 1)
        if self.watch:
            sums = torch.zeros(len(self.watch), dtype=torch.float64)
            n_tok = 0
            for i in range(0, len(self.probe), self.cfg.batch_size):
                batch = [Example(s, s) for s in self.probe[i : i + self.cfg.batch_size]]
                ids, _, mask = collate(batch, self.pad, self.lm.device)
                with capture_residual(self.model, [self.knobs.hookpoint]) as cap:
                    self.model(input_ids=ids, attention_mask=mask, use_cache=False)
                acts = feature_activations(self.sae, cap[self.knobs.hookpoint], self.watch)
                sums += (acts * mask[..., None]).sum((0, 1)).double().cpu()
                n_tok += int(mask.sum())
            row["features"] = {str(f): float(v) / max(n_tok, 1) for f, v in zip(self.watch, sums, strict=True)}
        fit = evaluate_sae(self.lm, self.sae, self.probe, batch_size=self.cfg.batch_size, progress=False)
        row["sae_fvu"] = fit["fvu"]
        row["sae_ce_loss_score"] = fit["ce_loss_score"]
        self.model.train()
        return row

    # -------------------------------------------------------------- loop
    def run(self, resume: bool = False, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Train to the last step (from the latest checkpoint with ``resume``); ``on_step(step)`` runs after
        each optimizer step (tests use it to kill a run). Returns the last eval row and the output paths."""
        from tqdm import tqdm

        from steerlab.training.plots import append_metrics, plot_metrics, read_metrics

        self.out.mkdir(parents=True, exist_ok=True)
        for stale in (self.out / CHECKPOINTS).glob(".tmp-*") if (self.out / CHECKPOINTS).is_dir() else []:
            shutil.rmtree(stale, ignore_errors=True)  # a save that was killed mid-write
        metrics = self.out / "metrics.jsonl"
        start = self.resume() if resume else None
        self.write_run_file()
        if start is None:
            if checkpoint_dirs(self.out):
                raise ConflictError(
                    f"{self.out} holds checkpoints of an earlier run; "
                    "pass --resume to continue it, or use another --out",
                    field="--out",
                )
            metrics.unlink(missing_ok=True)
        else:  # lines written after the checkpoint are redone
            kept = [r for r in read_metrics(metrics) if r["step"] <= start]
            metrics.write_text("".join(json.dumps(r) + "\n" for r in kept))
        if self.step == 0:
            append_metrics(metrics, self.evaluate())
        self.model.train()
        bar = tqdm(total=self.total, initial=self.step, desc="finetune", unit="step", disable=not self.progress)
        last_eval: dict[str, Any] = {}
        train_s, toks = 0.0, 0  # tokens/s counts the training steps only, not evals and checkpoint writes
        while self.step < self.total:
            t0 = time.perf_counter()
            epoch, index, batch = batch_for_step(self.train, self.step, self.cfg.batch_size, self.cfg.seed)
            ids, labels, mask = collate(batch, self.pad, self.lm.device)
            with self.knobs.attached(self.model):
                logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                loss, n = lm_loss(logits, labels)
                penalty = self.knobs.penalty(mask)
            total_loss = loss if penalty is None else loss + penalty
            self.optimizer.zero_grad(set_to_none=True)
            total_loss.backward()
            if self.cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            toks += int(mask.sum())
            train_s += time.perf_counter() - t0
            elapsed = train_s
            row = {
                "kind": "train",
                "step": self.step,
                "epoch": epoch,
                "batch_in_epoch": index,
                "loss": float(loss.detach()),
                "lr": self.scheduler.get_last_lr()[0],
                "tokens_per_s": toks / elapsed if elapsed > 0 else None,
                "assistant_tokens": n,
            }
            if penalty is not None:
                row["penalty"] = float(penalty.detach())
            append_metrics(metrics, row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            if self.step % self.cfg.eval_every == 0 or self.step == self.total:
                last_eval = self.evaluate()
                append_metrics(metrics, last_eval)
                plot_metrics(read_metrics(metrics), self.out / "curves.png")
            if self.step % self.cfg.save_every == 0 or self.step == self.total:
                self.save_checkpoint()
            if on_step is not None:
                on_step(self.step)
        bar.close()
        if not last_eval:
            last_eval = self.evaluate()
        plot_metrics(read_metrics(metrics), self.out / "curves.png")
        return {"eval": last_eval, "metrics": str(metrics), "curves": str(self.out / "curves.png")}

    def describe(self) -> dict[str, Any]:
        """What this run is: the base model, the SAE's layer and the settings (JSON-ready)."""
        cfg = asdict(self.cfg)
        cfg["steer"] = {str(k): v for k, v in self.cfg.steer.items()}
        cfg["penalize"] = {str(k): v for k, v in self.cfg.penalize.items()}
        cfg["watch"] = self.watch
        return {"base_model": self.lm.name, "sae_hookpoint": self.knobs.hookpoint, "finetune": cfg}

    def write_run_file(self) -> None:
        """``run.json``: what the run was started with and its planned steps, for viewers of a run in
        progress (the web UI); replaced whole, never half-written."""
        from steerlab.training.runs import RUN_FILE

        tmp = self.out / f".{RUN_FILE}.tmp"
        tmp.write_text(json.dumps(self.describe() | {"total_steps": self.total}, indent=2))
        os.replace(tmp, self.out / RUN_FILE)

    def save_model(self, extra: dict[str, Any] | None = None) -> Path:
        """Merge the adapters (LoRA) and write the plain HF folder ``out/model`` (atomically). The knobs'
        hooks are not part of the model: they only exist inside ``run``'s training forwards."""
        if self.peft is not None:
            self.lm.model = self.peft.merge_and_unload()
            self.peft = None
        model = self.lm.model
        model.eval()
        model.requires_grad_(False)
        source = self.describe()
        source.update(extra or {})

        def write(tmp: Path) -> None:
            model.save_pretrained(tmp, safe_serialization=True)
            self.lm.tokenizer.save_pretrained(tmp)
            (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2))

        return write_dir_atomically(self.out / MODEL_DIR, write)


def load_for_training(
    model: str, sae_path: str | None, db_path: str | None, dtype: str | None, device: str | None, top_k: int = 3
) -> tuple[LoadedModel, SAE, Callable[[str], list[int]] | None]:
    """The model (plain linear layers: packed ones cannot train), its SAE checked against it (the loader and
    SAE checks every steerlab command uses), and a search-query resolver over the SAE's feature database
    (None without one)."""
    from steerlab.engine.lab import check_database_matches
    from steerlab.features.identity import database_sae_id, open_feature_database
    from steerlab.models.loader import load_model
    from steerlab.sae.bundled import load_sae_for

    lm = load_model(model, dtype=dtype, device=device, packed=False)
    sae = load_sae_for(lm, sae_path)
    store = open_feature_database(lm.name, sae_path, db_path)
    if store is None:
        return lm, sae, None
    sae_id = database_sae_id(store)
    check_database_matches(sae, sae_id, store.path)
    from steerlab.features.search import FeatureSearch

    search = FeatureSearch(store, sae_id)

    def resolve(query: str) -> list[int]:
        return [hit.index for hit in search.search(query, top_k=top_k)]

    return lm, sae, resolve
