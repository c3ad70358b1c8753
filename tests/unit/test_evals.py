import math

import torch

from steerlab.sae.config import SAEConfig
from steerlab.sae.evals import evaluate_sae, sequences_from_text_file
from steerlab.sae.registry import create_sae
from tests.conftest import TINY_TEXT


def _exact_relu_sae(d: int, hookpoint: str):
    """ReLU SAE with codes [relu(x), relu(-x)] and decoder [I; -I]: reconstructs x exactly."""
    sae = create_sae(SAEConfig(d_in=d, d_sae=2 * d, architecture="relu", hookpoint=hookpoint))
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.b_enc.zero_()
        sae.W_dec.copy_(torch.cat([eye, -eye], 0))
        sae.b_dec.zero_()
    return sae.requires_grad_(False)


def _sequences(lm, tmp_path):
    path = tmp_path / "heldout.txt"
    path.write_text(" ".join(TINY_TEXT * 6))
    return sequences_from_text_file(path, lm.tokenizer, context_length=40)


def test_exact_sae_scores_perfectly(tiny_lm, tmp_path):
    result = evaluate_sae(
        tiny_lm, _exact_relu_sae(64, "model.layers.1"), _sequences(tiny_lm, tmp_path), batch_size=2, progress=False
    )
    assert result["fvu"] < 1e-9
    assert math.isclose(result["ce_loss_sae"], result["ce_loss_clean"], rel_tol=1e-5)
    assert math.isclose(result["ce_loss_score"], 1.0, abs_tol=1e-4)
    assert result["kl_div"] < 1e-6
    assert result["ce_loss_zero"] != result["ce_loss_clean"]


def test_random_sae_scores_badly_and_reports_every_field(tiny_lm, tmp_path):
    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=64, d_sae=256, k=4, hookpoint="model.layers.1")).requires_grad_(False)
    result = evaluate_sae(tiny_lm, sae, _sequences(tiny_lm, tmp_path), batch_size=3, progress=False)
    for key in ("fvu", "l0", "dead_fraction", "ce_loss_clean", "ce_loss_sae", "ce_loss_score", "kl_div"):
        assert math.isfinite(result[key]), key
    assert result["fvu"] > 0.3 and result["l0"] <= 4 and result["kl_div"] > 0


def test_massive_activations_are_left_out_of_fvu(tiny_lm, tmp_path):
    """A token with 1,000x the residual norm (an attention sink past position 0) would hold nearly all the pooled
    variance, and the FVU would measure that one token: it is counted apart and left out of fvu and l0."""
    torch.manual_seed(0)
    sae = create_sae(SAEConfig(d_in=64, d_sae=256, k=4, hookpoint="model.layers.1")).requires_grad_(False)
    sequences = _sequences(tiny_lm, tmp_path)
    plain = evaluate_sae(tiny_lm, sae, sequences, batch_size=3, progress=False)

    def sink_at_5(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden[:, 5] *= 1000.0

    handle = tiny_lm.model.model.layers[1].register_forward_hook(sink_at_5)
    try:
        sunk = evaluate_sae(tiny_lm, sae, sequences, batch_size=3, progress=False)
    finally:
        handle.remove()
    assert plain["massive_tokens"] == 0
    assert sunk["massive_tokens"] == sum(len(s) > 5 for s in sequences)
    assert sunk["num_tokens"] == plain["num_tokens"] - sunk["massive_tokens"]
    assert abs(sunk["fvu"] - plain["fvu"]) < 0.1 * plain["fvu"]  # pooled, the 1,000x tokens alone set it
