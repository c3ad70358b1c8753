"""The bundled default: SmolLM2-135M-Instruct from its GGUF file, the bundled SAE, steering."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from steerlab.generation.sampler import SamplingParams
from steerlab.models.hooks import forward_to_hookpoint
from steerlab.models.loader import cache_dir_for
from steerlab.models.registry import BUNDLED, DEFAULT_MODEL
from steerlab.sae.evals import evaluate_sae, sequences_from_text_file
from steerlab.steering.edits import FeatureEdit
from steerlab.steering.plan import edits_controller
from tests.default_features import FRENCH

pytestmark = pytest.mark.integration
DATA = Path(__file__).parent.parent / "data"
STEERLAB = str(Path(sys.executable).parent / "steerlab")  # the venv's script, activated or not


def test_default_model_shape_and_chat_template(default_lm):
    assert default_lm.name == DEFAULT_MODEL
    assert (default_lm.num_layers, default_lm.d_model, default_lm.config.vocab_size) == (30, 576, 49152)
    text = default_lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert (cache_dir_for(DEFAULT_MODEL) / "model.safetensors").is_file()


def test_cached_conversion_equals_the_gguf_weights(default_lm):
    from transformers import AutoModelForCausalLM

    gguf = BUNDLED[DEFAULT_MODEL].locate()
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    checked = 0
    for name, module in default_lm.model.named_modules():  # packed layers rebuild their weight bit for bit
        if isinstance(getattr(module, "weight", None), torch.Tensor):
            assert torch.equal(module.weight, direct.get_submodule(name).weight), name
            checked += 1
    assert checked == 30 * 9 + 3  # per layer 7 projections + 2 norms; embedding, final norm, head
    ids = default_lm.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.inference_mode():  # the same products, summed in another order by the packed kernels
        assert torch.allclose(direct(ids).logits, default_lm.model(ids).logits, rtol=0, atol=1e-3)


def test_default_model_knows_something(default_lm):
    ids = default_lm.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        top = default_lm.model(ids).logits[0, -1].argmax()
    assert default_lm.tokenizer.decode(top).strip() == "Paris"


def test_bundled_sae_meets_fvu_bound_on_fixed_text(default_lm, default_sae):
    assert default_sae.cfg.d_in == 576 and default_sae.cfg.model_name == DEFAULT_MODEL
    seqs = sequences_from_text_file(DATA / "heldout_sample.txt", default_lm.tokenizer, 128, max_tokens=1500)
    result = evaluate_sae(default_lm, default_sae, seqs, batch_size=4, progress=False)
    assert result["fvu"] < 0.3, result
    assert result["l0"] <= default_sae.cfg.k
    assert result["ce_loss_score"] > 0.8, result


def test_steering_a_feature_changes_the_reply(default_lab, default_lm, default_sae):
    msgs = [{"role": "user", "content": "Tell me about your day."}]
    params = SamplingParams(max_new_tokens=20, temperature=0)
    base = "".join(e.text for e in default_lab.generate(msgs, params))
    x = forward_to_hookpoint(
        default_lm.model,
        default_lm.tokenizer("the sea and the ships", return_tensors="pt")["input_ids"],
        default_sae.cfg.hookpoint,
    )[0, 1:]
    feature = int(default_sae.encode(x).sum(0).argmax())
    steered = "".join(e.text for e in default_lab.generate(msgs, params, edits_controller([FeatureEdit(feature, 1.0)])))
    assert base.strip() and steered != base


def test_cli_chat_streams_and_rejects_bad_features():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run(
        [STEERLAB, "chat", "Say hello.", "--feature", "5=0.5", "--seed", "0", "--max-tokens", "8"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert ok.returncode == 0 and ok.stdout.strip(), ok.stderr
    bad = subprocess.run(
        [STEERLAB, "chat", "hi", "--feature", "999999=1"], capture_output=True, text=True, env=env, timeout=300
    )
    assert bad.returncode == 2 and "0.." in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_cli_sae_eval_json(tmp_path):
    import json

    out = subprocess.run(
        [STEERLAB, "sae", "eval", "--text-file", str(DATA / "heldout_sample.txt"), "--json", "--max-tokens", "600"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"fvu", "l0", "dead_fraction", "ce_loss_clean", "ce_loss_sae", "ce_loss_score", "kl_div"} <= result.keys()


def test_sae_mismatched_with_model_is_refused(default_lm, tmp_path):
    from steerlab.sae.bundled import load_sae_for
    from steerlab.sae.config import SAEConfig
    from steerlab.sae.registry import create_sae
    from steerlab.sae.storage import SAEFormatError

    create_sae(SAEConfig(d_in=64, d_sae=128, hookpoint="model.layers.3")).save(tmp_path / "small")
    with pytest.raises(SAEFormatError, match="d_model=576"):
        load_sae_for(default_lm, tmp_path / "small")


def test_readme_quickstart_feature_turns_the_reply_french(default_lab):
    """README's quickstart claims feature FRENCH (+0.6, steering units; 2 in the old quantile unit) makes the
    reply French; keep the two in step."""
    msgs = [{"role": "user", "content": "Tell me about your weekend."}]
    params = SamplingParams(max_new_tokens=12, temperature=0)
    steered = "".join(e.text for e in default_lab.generate(msgs, params, edits_controller([FeatureEdit(FRENCH, 0.6)])))
    assert "Bonjour" in steered, steered


def test_half_a_steering_unit_visibly_changes_greedy_output(default_lab, monkeypatch):
    """Ember's range (issue 14): nudging a feature by 0.5 rewrites most of a 30-token greedy reply, where the
    old quantile unit (still reachable with STEERLAB_STEERING_UNIT=quantile) left every token as it was."""
    msgs = [{"role": "user", "content": "Tell me about your weekend."}]
    params = SamplingParams(max_new_tokens=30, temperature=0)
    nudge = edits_controller([FeatureEdit(100, 0.5)])

    def reply(variant=None):
        return [e.token_id for e in default_lab.generate(msgs, params, variant)]

    base, steered = reply(), reply(nudge)
    assert len(base) == 30 and sum(a != b for a, b in zip(base, steered)) >= 15
    monkeypatch.setenv("STEERLAB_STEERING_UNIT", "quantile")
    assert reply(nudge) == base
