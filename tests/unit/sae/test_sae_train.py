"""The trainer: every variant learns, outputs are complete, and resume is bit-exact."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from steerlab.sae import SAE, SAEConfig, TensorActivationSource, TrainConfig, train_sae
from steerlab.sae.checkpoint import list_checkpoints
from steerlab.sae.optim import geometric_median, lr_at

TRAINING_KEYS = {"step", "tokens", "loss", "fvu", "l0", "dead_fraction", "auxk", "lr", "tokens_per_s"}


def small_cfg(arch: str, k: int = 6) -> SAEConfig:
    return SAEConfig(d_in=32, d_sae=128, k=k, architecture=arch, l0_coefficient=1e-3, l1_coefficient=0.01)


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu", "relu"])
def test_each_variant_learns_the_sparse_structure(tmp_path, acts, arch):
    source = TensorActivationSource(acts, epochs=4)  # 32k tokens
    tcfg = TrainConfig(batch_size=256, lr=4e-3, checkpoint_every_steps=40, log_every_steps=5)
    sae = train_sae(small_cfg(arch), tcfg, source, tmp_path, progress=False)

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert TRAINING_KEYS <= set(records[-1])
    assert [r["step"] for r in records] == sorted({r["step"] for r in records})
    assert records[-1]["tokens"] == 115 * 256 and records[-1]["lr"] < 1e-4  # decayed to ~0
    assert records[0]["fvu"] > 0.5 and records[-1]["fvu"] < 0.3
    holdout_fvu = sae.cfg.extra["holdout_fvu"]
    assert holdout_fvu < 0.3, holdout_fvu
    assert 1.0 <= sae.cfg.extra["holdout_l0"] <= 40
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(128))
    assert (sae.feature_scale != 1.0).sum() > 64  # measured on the holdout for live latents

    assert (tmp_path / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000080", "step_0000115"]
    saved = SAE.load(tmp_path / "sae")
    for name, tensor in sae.state_dict().items():
        assert torch.equal(saved.state_dict()[name], tensor), name
    x = acts[:512]
    assert torch.equal(saved.encode(x), sae.encode(x))


class Killed(Exception):
    pass


class DiesAfter:
    """A source whose stream stops with an exception after ``n`` batches: a killed job."""

    def __init__(self, source, n):
        self.source, self.n = source, n
        self.num_tokens, self.d_in = source.num_tokens, source.d_in

    def iter_batches(self, batch_size, start_token=0, seed=0):
        for i, batch in enumerate(self.source.iter_batches(batch_size, start_token, seed)):
            if i == self.n:
                raise Killed
            yield batch


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu", "relu"])
def test_resume_after_kill_is_bit_identical(tmp_path, acts, arch):
    source = TensorActivationSource(acts[:4096], epochs=2)
    tcfg = TrainConfig(
        batch_size=128,
        total_tokens=24 * 128,
        checkpoint_every_steps=5,
        log_every_steps=2,
        dead_tokens_threshold=128,
        holdout_tokens=512,
        seed=3,
    )
    cfg = small_cfg(arch, k=2)  # k=2: some latents go dead, so the AuxK path is exercised
    straight = train_sae(cfg, tcfg, source, tmp_path / "a", progress=False)

    with pytest.raises(Killed):  # dies during step 14: steps 11-13 are lost and redone
        train_sae(cfg, tcfg, DiesAfter(source, 13), tmp_path / "b", progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["step_0000005", "step_0000010"]
    resumed = train_sae(cfg, tcfg, source, tmp_path / "b", progress=False)

    for name, tensor in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
    assert resumed.cfg == straight.cfg
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    # every log_every and checkpoint step, once: the lost steps were not logged twice
    assert steps == sorted(set(range(2, 25, 2)) | {5, 15})
    if arch in ("topk", "batchtopk"):  # the dead-latent path really ran
        records = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
        assert any(json.loads(line)["auxk"] > 0 for line in records)


def test_resume_refuses_a_different_trajectory(tmp_path, acts):
    source = TensorActivationSource(acts[:2048])
    tcfg = TrainConfig(batch_size=128, total_tokens=1024, checkpoint_every_steps=4, holdout_tokens=0)
    train_sae(small_cfg("topk"), tcfg, source, tmp_path, progress=False)
    with pytest.raises(ValueError, match="different lr"):
        train_sae(small_cfg("topk"), TrainConfig(**{**tcfg.__dict__, "lr": 1e-2}), source, tmp_path, progress=False)
    with pytest.raises(ValueError, match="different SAEConfig.*d_sae"):
        cfg = SAEConfig(d_in=32, d_sae=64, k=6)
        train_sae(cfg, tcfg, source, tmp_path, progress=False)
    # resume=False starts over and leaves no trace of the old run
    train_sae(small_cfg("relu"), tcfg, source, tmp_path, resume=False, progress=False)
    assert SAE.load(tmp_path / "sae").cfg.architecture == "relu"


def test_finished_run_resumes_to_the_same_sae(tmp_path, acts):
    source = TensorActivationSource(acts[:2048])
    tcfg = TrainConfig(batch_size=128, total_tokens=1024, holdout_tokens=256)
    first = train_sae(small_cfg("topk"), tcfg, source, tmp_path, progress=False)
    again = train_sae(small_cfg("topk"), tcfg, source, tmp_path, progress=False)
    for name, tensor in first.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


def test_bad_plans_fail_early(tmp_path, acts):
    source = TensorActivationSource(acts[:1000])
    with pytest.raises(ValueError, match="d_in"):
        train_sae(SAEConfig(d_in=16, d_sae=32, k=4), TrainConfig(), source, tmp_path)
    with pytest.raises(ValueError, match="total_tokens.*5000 requested"):
        train_sae(small_cfg("topk"), TrainConfig(total_tokens=5000, batch_size=64), source, tmp_path)
    with pytest.raises(ValueError, match="decay"):
        TrainConfig(decay="step")


def test_lr_schedule():
    kw = {"total_steps": 100, "lr": 1.0, "warmup_steps": 10, "decay_fraction": 0.2}
    linear = [lr_at(s, decay="linear", **kw) for s in range(100)]
    assert linear[0] == pytest.approx(0.1) and linear[9] == 1.0
    assert linear[10:80] == [1.0] * 70
    assert linear[80] == pytest.approx(0.95) and linear[99] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(linear[9:]))
    cosine = [lr_at(s, decay="cosine", **kw) for s in range(100)]
    assert cosine[89] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5))) and cosine[99] == pytest.approx(0.0)
    assert [lr_at(s, decay="none", **kw) for s in (50, 99)] == [1.0, 1.0]


def test_geometric_median_ignores_outliers():
    g = torch.Generator().manual_seed(0)
    points = torch.randn(500, 8, generator=g) * 0.1 + 3.0
    points[:20] = 1000.0  # a few huge outlier tokens (like BOS)
    assert (geometric_median(points) - 3.0).abs().max() < 0.05
    assert (points.mean(0) - 3.0).abs().max() > 30


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_massive_tokens_do_not_steer_training(tmp_path, acts):
    """One token in 512 with 100x the norm (an attention sink past position 0, as harvests keep them): its squared
    error is ~10,000x an ordinary token's and it inflates the input scale. The trainer leaves such tokens out of
    the loss, the input scale and the logged FVU, so the run follows the one on the same stream without them;
    kept (massive_factor=0, the behaviour before), they move both."""
    sunk = acts.clone()
    sinks = torch.zeros(len(acts), dtype=torch.bool)
    sinks[::512] = True
    sunk[sinks] *= 100.0
    kw = {"batch_size": 256, "lr": 4e-3, "checkpoint_every_steps": 40, "log_every_steps": 1, "seed": 1}
    runs = {}
    for name, data, factor in (("clean", acts, None), ("dropped", sunk, None), ("kept", sunk, 0.0)):
        tcfg = TrainConfig(massive_factor=factor, **kw)
        runs[name] = train_sae(small_cfg("topk"), tcfg, TensorActivationSource(data, epochs=2), tmp_path / name, False)
    clean, dropped, kept = (_records(tmp_path / name) for name in ("clean", "dropped", "kept"))
    assert len(clean) == len(dropped) == len(kept)

    # what the trainer left out is exactly the injected tokens in the batches it trained on
    stream = TensorActivationSource(sunk, epochs=2).iter_batches(256, seed=1)
    big = acts.norm(dim=1).max() * 20
    injected = sum(int((batch.norm(dim=1) > big).sum()) for batch in itertools.islice(stream, clean[-1]["step"]))
    assert injected > 10
    assert sum(r["massive_tokens"] for r in dropped) == injected == runs["dropped"].cfg.extra["massive_tokens_dropped"]
    assert sum(r["massive_tokens"] for r in kept) == 0 == runs["kept"].cfg.extra["massive_tokens_dropped"]
    assert runs["dropped"].cfg.extra["massive_factor"] == 10.0

    def gap(a, b, key):
        return max(abs(x[key] - y[key]) for x, y in zip(a, b))

    # step by step (a record per step) the logged FVU and loss follow the clean run's (measured: 0.003 apart)...
    assert gap(clean, dropped, "fvu") < 0.01 and gap(clean, dropped, "loss") < 0.01
    assert gap(clean, kept, "fvu") > 0.15  # ...where kept sinks set them (measured: 0.22 apart)
    holdout = {name: sae.cfg.extra["holdout_fvu"] for name, sae in runs.items()}
    assert abs(holdout["dropped"] - holdout["clean"]) < 0.02, holdout
    # the kept run's SAE reconstructs ordinary tokens worse: the sinks set its input scale and held its loss
    x = acts[-1024:]
    with torch.no_grad():
        err = {
            name: float((sae(x).sae_out - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()) for name, sae in runs.items()
        }
    assert abs(err["dropped"] - err["clean"]) < 0.005 and err["kept"] > err["clean"] + 0.02, err


def test_checkpoints_from_before_the_massive_cut_resume_only_with_it_off(tmp_path, acts):
    """A checkpoint written before the trainer dropped massive tokens kept them: it resumes with massive_factor=0
    (the same trajectory) and is refused with the new default, which would change it."""
    source = TensorActivationSource(acts[:2048])
    tcfg = TrainConfig(batch_size=128, total_tokens=1024, checkpoint_every_steps=4, holdout_tokens=0)
    train_sae(small_cfg("topk"), tcfg, source, tmp_path, progress=False)
    for meta_path in (tmp_path / "checkpoints").glob("*/trainer.json"):
        meta = json.loads(meta_path.read_text())
        del meta["train_config"]["massive_factor"], meta["massive_tokens"]
        meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="different massive_factor"):
        train_sae(small_cfg("topk"), tcfg, source, tmp_path, progress=False)
    old = TrainConfig(**{**tcfg.__dict__, "massive_factor": 0.0})
    assert train_sae(small_cfg("topk"), old, source, tmp_path, progress=False).cfg.extra["massive_factor"] == 0.0
    with pytest.raises(ValueError, match="massive_factor"):
        TrainConfig(massive_factor=-1.0)
