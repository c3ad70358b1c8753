"""steerlab finetune on the tiny model: data, knobs, dials, checkpoints, resume, the saved folder."""

import errno
import json
import time

import pytest
import torch

from steerlab.errors import InvalidInputError, SteerlabError, UnknownFeatureError
from steerlab.models.hooks import capture_residual
from steerlab.models.loader import load_model
from steerlab.training.data import IGNORE, TrainingDataError, read_chat_jsonl, tokenize_all, tokenize_chat
from steerlab.training.finetune import (
    CheckpointWriteError,
    FinetuneConfig,
    Finetuner,
    batch_for_step,
    checkpoint_dirs,
    split_examples,
)
from steerlab.training.knobs import Knobs, parse_list, parse_values
from steerlab.training.plots import read_metrics
from tests.unit.training.conftest import conversations


def examples(tokenizer, n=24):
    return tokenize_all(tokenizer, conversations(n), 128)


def tuner(lm, sae, out, **kw):
    defaults = {"batch_size": 4, "eval_every": 3, "save_every": 2, "warmup_steps": 1, "probe_size": 4}
    cfg = FinetuneConfig(out=str(out), **{**defaults, **kw})
    train, ev = split_examples(examples(lm.tokenizer), 0.2, cfg.seed)
    return Finetuner(lm, sae, train, ev, cfg, progress=False)


# ---------------------------------------------------------------------------------------------- data
def test_labels_cover_assistant_turns_only(tiny_tokenizer):
    conv = [{"role": "user", "content": "where is the cat"}, {"role": "assistant", "content": "the cat sat on the mat"}]
    ex = tokenize_chat(tiny_tokenizer, conv, 512)
    learned = [t for t in ex.labels if t != IGNORE]
    assert tiny_tokenizer.decode(learned) == "the cat sat on the mat<|im_end|>\n"
    assert len(ex.ids) == len(ex.labels) and ex.labels[0] == IGNORE


def test_bad_training_data_names_the_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(TrainingDataError, match="no examples"):
        read_chat_jsonl(empty)
    bad = tmp_path / "bad.jsonl"
    ok = json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
    bad.write_text(ok + "\n{not json\n")
    with pytest.raises(TrainingDataError, match="line 2: not JSON"):
        read_chat_jsonl(bad)
    bad.write_text(ok + "\n" + json.dumps({"messages": [{"role": "user", "content": "only a question"}]}) + "\n")
    with pytest.raises(TrainingDataError, match="line 2: no assistant"):
        read_chat_jsonl(bad)
    bad.write_text(json.dumps({"messages": [{"role": "wizard", "content": "x"}]}) + "\n")
    with pytest.raises(TrainingDataError, match="line 1") as err:
        read_chat_jsonl(bad)
    assert err.value.field == "--data"


def test_feature_specs_out_of_range_and_queries(sae):
    with pytest.raises(UnknownFeatureError, match="out of range") as err:
        parse_list("3,128", 128, "--ablate", None)
    assert err.value.field == "--ablate" and err.value.allowed == "0..127"
    with pytest.raises(InvalidInputError, match="no feature database"):
        parse_list("pirates", 128, "--ablate", None)
    assert parse_list("pirates,5", 128, "--ablate", lambda q: [7, 5]) == [7, 5]
    assert parse_values(["pirates=0.5", "9=-1"], 128, "--steer", lambda q: [7]) == {7: 0.5, 9: -1.0}
    with pytest.raises(InvalidInputError, match="F=VALUE"):
        parse_values(["9=lots"], 128, "--steer", None)
    with pytest.raises(UnknownFeatureError):
        Knobs(sae, penalize={500: 1.0})


def test_sae_of_another_model_is_refused(tiny_model_dir, tmp_path, steerlab_home):
    from steerlab.sae.storage import SAEFormatError
    from steerlab.training.finetune import load_for_training
    from tests.unit.steering.conftest import make_tiny_sae

    path = make_tiny_sae(d_in=32).save(tmp_path / "other-sae")
    with pytest.raises(SAEFormatError, match="d_in=32"):
        load_for_training(str(tiny_model_dir), str(path), None, "float32", "cpu")


# ---------------------------------------------------------------------------------------------- knobs
def _loss_through(lm, knobs, ids):
    with knobs.attached(lm.model):
        logits = lm.model(input_ids=ids, use_cache=False).logits
        h = knobs.last_input
        h.retain_grad()
    torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]).backward()
    return h.grad[0]


def test_ablated_directions_carry_no_gradient(fresh_lm, sae):
    lm = fresh_lm()
    lm.model.requires_grad_(True)
    ids = torch.tensor([lm.tokenizer("the cat sat on the mat and the dog ran")["input_ids"]])
    feats = [3, 17, 40]
    knobs = Knobs(sae, ablate=feats)
    q = knobs.basis
    assert q.shape == (64, 3) and torch.allclose(q.T @ q, torch.eye(3), atol=1e-5)
    grad = _loss_through(lm, knobs, ids)
    assert (grad @ q).abs().max() < 1e-6 * grad.abs().max() + 1e-12
    lm.model.zero_grad()
    plain = _loss_through(lm, Knobs(sae, steer={0: 0.0}), ids)  # a no-op edit, so the hook still runs
    assert (plain @ q).abs().max() > 1e-3 * plain.abs().max()  # the check can fail: without ablation it does


def test_steer_adds_the_scaled_decoder_direction(fresh_lm, sae):
    lm = fresh_lm()
    ids = torch.tensor([lm.tokenizer("pirates say arr matey")["input_ids"]])
    hp = sae.cfg.hookpoint
    with torch.no_grad(), capture_residual(lm.model, [hp]) as cap:
        lm.model(input_ids=ids, use_cache=False)
    plain = cap[hp].clone()
    knobs = Knobs(sae, steer={5: 2.0, 9: -1.0})
    with torch.no_grad(), knobs.attached(lm.model), capture_residual(lm.model, [hp]) as cap:
        lm.model(input_ids=ids, use_cache=False)
    want = plain + 2.0 * sae.feature_scale[5] * sae.W_dec[5] - 1.0 * sae.feature_scale[9] * sae.W_dec[9]
    assert torch.allclose(cap[hp], want, atol=1e-5)
    with torch.no_grad(), capture_residual(lm.model, [hp]) as cap:  # removed after the block
        lm.model(input_ids=ids, use_cache=False)
    assert torch.equal(cap[hp], plain)


def _active_features(lm, sae, k=3):
    from steerlab.training.knobs import feature_activations

    ids = torch.tensor([lm.tokenizer(" ".join(c[1]["content"] for c in conversations(5)))["input_ids"]])
    with torch.no_grad(), capture_residual(lm.model, [sae.cfg.hookpoint]) as cap:
        lm.model(input_ids=ids, use_cache=False)
    acts = feature_activations(sae, cap[sae.cfg.hookpoint][0], list(range(sae.cfg.d_sae))).mean(0)
    return acts.topk(k).indices.tolist()


def test_penalize_lowers_the_features_vs_plain(fresh_lm, sae, tmp_path):
    feats = _active_features(fresh_lm(), sae)
    common = {"lora": False, "lr": 2e-3, "max_steps": 6, "eval_every": 6, "watch": feats}
    plain = tuner(fresh_lm(), sae, tmp_path / "plain", **common).run()["eval"]["features"]
    pen = tuner(fresh_lm(), sae, tmp_path / "pen", penalize=dict.fromkeys(feats, 5.0), **common).run()["eval"]
    rows = read_metrics(tmp_path / "pen" / "metrics.jsonl")
    start = rows[0]["features"]  # step 0: the base model
    for f in feats:
        assert pen["features"][str(f)] < plain[str(f)]
        assert pen["features"][str(f)] < start[str(f)]
    assert any("penalty" in r for r in rows if r["kind"] == "train")


# ---------------------------------------------------------------------------------------------- runs
def test_metrics_dials_and_curves(fresh_lm, sae, tmp_path):
    t = tuner(fresh_lm(), sae, tmp_path / "run", max_steps=3, ablate=[3], steer={5: 1.0})
    result = t.run()
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 3]
    for r in evals:
        assert set(r["features"]) == {"3", "5"} and r["sae_fvu"] > 0 and "sae_ce_loss_score" in r and "eval_loss" in r
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3]
    lrs = [r["lr"] for r in rows if r["kind"] == "train"]
    assert lrs[0] > lrs[1] > lrs[2]  # warmup 1 step, then cosine down
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    assert result["eval"]["step"] == 3


def test_tokens_per_s_counts_training_steps_only(fresh_lm, sae, tmp_path):
    """Evals and checkpoint writes between steps are not training time: a slow eval (3 s after each of
    the 3 steps here) must not drag the logged tokens/s down, or knobs with more evals look slower.
    (With 1.5 s evals and a 3 s bound, three tiny steps on a loaded machine once took longer than the bound.)"""
    t = tuner(fresh_lm(), sae, tmp_path / "run", max_steps=3, eval_every=1, save_every=1)
    real = t.evaluate

    def slow_evaluate():
        time.sleep(3.0)
        return real()

    t.evaluate = slow_evaluate
    t.run()
    train = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert len(train) == 3
    tokens = sum(len(e.ids) for step in range(3) for e in batch_for_step(t.train, step, 4, 0)[2])  # real tokens
    # with the two evals and saves between the steps counted, the rate could not exceed tokens / 6 s
    assert train[-1]["tokens_per_s"] > tokens / 6.0


def test_resume_after_a_kill_mid_epoch_is_exact(fresh_lm, sae, tmp_path):
    # 19 train examples / batch 4 = 5 steps per epoch; 6 steps cross an epoch; LoRA dropout uses the RNG.
    steps = 6
    one = tuner(fresh_lm(), sae, tmp_path / "one", max_steps=steps, steer={5: 0.5}, eval_every=4)
    one.run()

    class Killed(Exception):
        pass

    def kill_at(step):
        if step == 3:  # a step after the checkpoint at 2: its work is lost and redone
            raise Killed

    two = tuner(fresh_lm(), sae, tmp_path / "two", max_steps=steps, steer={5: 0.5}, eval_every=4)
    with pytest.raises(Killed):
        two.run(on_step=kill_at)
    assert [p.name for p in checkpoint_dirs(tmp_path / "two")] == ["step-00000002"]
    with pytest.raises(SteerlabError, match="--resume"):
        tuner(fresh_lm(), sae, tmp_path / "two", max_steps=steps, steer={5: 0.5}, eval_every=4).run()
    with pytest.raises(SteerlabError, match="other data or settings"):
        tuner(fresh_lm(), sae, tmp_path / "two", max_steps=steps, steer={5: 0.7}, eval_every=4).run(resume=True)
    again = tuner(fresh_lm(), sae, tmp_path / "two", max_steps=steps, steer={5: 0.5}, eval_every=4)
    again.run(resume=True)
    for name, p in one.params.items():
        assert torch.equal(p, again.params[name]), name
    a = [r for r in read_metrics(tmp_path / "one" / "metrics.jsonl")]
    b = [r for r in read_metrics(tmp_path / "two" / "metrics.jsonl")]
    strip = [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in a]
    assert strip == [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in b]


def test_a_failed_save_leaves_no_corrupt_checkpoint(fresh_lm, sae, tmp_path, monkeypatch):
    class Killed(Exception):
        pass

    def kill_at(step):
        if step == 2:
            raise Killed

    t = tuner(fresh_lm(), sae, tmp_path / "run", max_steps=4, save_every=2, eval_every=10)
    with pytest.raises(Killed):  # stopped right after saving step 2
        t.run(on_step=kill_at)
    before = checkpoint_dirs(tmp_path / "run")
    real_save = torch.save

    def full_disk(obj, f, *a, **kw):
        if str(f).endswith("optimizer.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", full_disk)
    t.step = 3
    with pytest.raises(CheckpointWriteError, match="No space left"):
        t.save_checkpoint()
    assert checkpoint_dirs(tmp_path / "run") == before
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-00000002"]
    monkeypatch.setattr(torch, "save", real_save)
    resumed = tuner(fresh_lm(), sae, tmp_path / "run", max_steps=4, save_every=2, eval_every=10)
    assert resumed.resume() == 2


def test_saved_model_has_no_knob_and_loads_with_model_path(fresh_lm, sae, tmp_path, steerlab_home):
    lm = fresh_lm()
    t = tuner(lm, sae, tmp_path / "run", max_steps=3, ablate=[3, 4], steer={5: 4.0})
    t.run()
    folder = t.save_model()
    trained = lm.model  # LoRA merged
    assert not any("lora" in n for n, _ in trained.named_parameters())
    ids = torch.tensor([lm.tokenizer("the dog ran in the park")["input_ids"]])
    with torch.no_grad():
        mine = trained(input_ids=ids, use_cache=False).logits
        with t.knobs.attached(trained):
            knobbed = trained(input_ids=ids, use_cache=False).logits
    loaded = load_model(str(folder), dtype="float32", device="cpu", packed=False)
    with torch.no_grad():
        theirs = loaded.model(input_ids=ids, use_cache=False).logits
    assert torch.allclose(mine, theirs, atol=1e-5)
    assert not torch.allclose(knobbed, theirs, atol=1e-3)
    base = fresh_lm()
    with torch.no_grad():
        assert not torch.allclose(base.model(input_ids=ids, use_cache=False).logits, theirs, atol=1e-4)
    assert json.loads((folder / "steerlab_source.json").read_text())["base_model"] == "tiny-llama"
    assert not list(folder.parent.glob(".tmp-*"))


def test_finetuned_folder_of_the_default_model_finds_its_sae(tmp_path):
    from steerlab.bundled_saes import bundled_sae_path
    from steerlab.models.registry import DEFAULT_MODEL

    base = bundled_sae_path(DEFAULT_MODEL)
    if base is None:
        pytest.skip("no bundled SAE in this checkout")
    (tmp_path / "steerlab_source.json").write_text(json.dumps({"base_model": DEFAULT_MODEL}))
    assert bundled_sae_path(str(tmp_path)) == base
    (tmp_path / "steerlab_source.json").write_text(json.dumps({"name": DEFAULT_MODEL, "gguf": "x"}))
    assert bundled_sae_path(str(tmp_path)) is None
