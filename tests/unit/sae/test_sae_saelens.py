"""SAELens interop: our writer -> SAELens's loader, SAELens's writer -> our loader."""

from __future__ import annotations

import json

import pytest
import torch

from steerlab.sae import (
    SAE,
    SAEConfig,
    SAEFormatError,
    create_sae,
    load_saelens,
    save_saelens,
)
from steerlab.sae.saelens_format import hook_to_hookpoint, hookpoint_to_hook

sae_lens = pytest.importorskip("sae_lens", reason="the dev extra installs sae-lens")
D_IN, D_SAE = 32, 128


def ours(arch: str) -> SAE:
    sae = create_sae(
        SAEConfig(
            d_in=D_IN, d_sae=D_SAE, k=8, architecture=arch, hookpoint="model.layers.5", layer=5, model_name="tiny-llama"
        ),
        generator=torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        sae.b_enc.copy_(0.2 * torch.randn(D_SAE, generator=g))
        sae.b_dec.copy_(torch.randn(D_IN, generator=g))
        sae.feature_scale.copy_(torch.rand(D_SAE, generator=g) + 1)
        if arch == "jumprelu":
            sae.threshold.copy_(torch.rand(D_SAE, generator=g) * 0.5)
        if arch == "batchtopk":
            sae.threshold.fill_(0.3)
    return sae.eval()


@pytest.mark.parametrize(
    ("arch", "saelens_arch"),
    [("topk", "topk"), ("relu", "standard"), ("jumprelu", "jumprelu"), ("batchtopk", "jumprelu")],
)
def test_saelens_loads_what_we_write(tmp_path, acts, arch, saelens_arch):
    sae = ours(arch)
    save_saelens(sae, tmp_path / "sl")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "sl"), device="cpu")
    assert theirs.cfg.architecture() == saelens_arch
    assert theirs.cfg.metadata.hook_name == "blocks.5.hook_resid_post"
    assert theirs.cfg.metadata.model_name == "tiny-llama"
    x = acts[:256]
    with torch.no_grad():
        f = theirs.encode(x)
        torch.testing.assert_close(f, sae.encode(x))
        torch.testing.assert_close(theirs.decode(f), sae.decode(f))
    assert (f != 0).any()
    # and back again: same SAE, feature_scale included (from the sidecar SAELens ignores)
    back = SAE.load(tmp_path / "sl")
    torch.testing.assert_close(back.encode(x), sae.encode(x))
    assert torch.equal(back.feature_scale, sae.feature_scale)
    assert (back.cfg.hookpoint, back.cfg.layer, back.cfg.model_name) == ("model.layers.5", 5, "tiny-llama")


def _their_sae(kind: str):
    from sae_lens import (
        JumpReLUSAE,
        JumpReLUSAEConfig,
        StandardSAE,
        StandardSAEConfig,
        TopKSAE,
        TopKSAEConfig,
    )

    meta = {"hook_name": "blocks.3.hook_resid_pre", "model_name": "gpt2"}
    if kind == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=8))
    elif kind == "topk_rescaled_no_bdec":  # options we fold into the weights on import
        sae = TopKSAE(
            TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=8, rescale_acts_by_decoder_norm=True, apply_b_dec_to_input=False)
        )
    elif kind == "standard":
        sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE))
    else:
        sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE))
    for key, value in meta.items():
        sae.cfg.metadata[key] = value
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        if kind == "jumprelu":
            sae.threshold.abs_()
        if kind == "topk_rescaled_no_bdec":
            sae.W_dec.mul_(torch.rand(D_SAE, 1, generator=g) + 0.5)  # decoder rows of varied norm
    return sae.eval()


@pytest.mark.parametrize(
    ("kind", "arch"),
    [("topk", "topk"), ("topk_rescaled_no_bdec", "topk"), ("standard", "relu"), ("jumprelu", "jumprelu")],
)
def test_we_load_what_saelens_writes(tmp_path, acts, kind, arch):
    theirs = _their_sae(kind)
    theirs.save_model(str(tmp_path / "sl"))
    sae = SAE.load(tmp_path / "sl")  # layout auto-detected
    assert sae.cfg.architecture == arch
    assert (sae.cfg.hookpoint, sae.cfg.layer, sae.cfg.model_name) == ("model.layers.2", 2, "gpt2")
    assert torch.equal(sae.feature_scale, torch.ones(D_SAE))
    x = acts[:256]
    with torch.no_grad():
        # (with rescale_acts_by_decoder_norm SAELens's codes are already per unit-norm
        # decoder row, which is what folding the norms gives us)
        torch.testing.assert_close(sae.encode(x), theirs.encode(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sae.decode(sae.encode(x)), theirs.decode(theirs.encode(x)), rtol=1e-5, atol=1e-5)
    assert (sae.encode(x) != 0).any()


def test_unsupported_saelens_layouts_are_clear(tmp_path):
    from sae_lens import GatedSAE, GatedSAEConfig

    GatedSAE(GatedSAEConfig(d_in=D_IN, d_sae=D_SAE)).save_model(str(tmp_path / "gated"))
    with pytest.raises(SAEFormatError, match="'gated' is not supported; supported: standard, topk, jumprelu"):
        SAE.load(tmp_path / "gated")
    theirs = _their_sae("topk")
    theirs.save_model(str(tmp_path / "norm"))
    cfg = json.loads((tmp_path / "norm" / "cfg.json").read_text())
    cfg["normalize_activations"] = "layer_norm"
    (tmp_path / "norm" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAEFormatError, match="normalize_activations='layer_norm' is not supported"):
        load_saelens(tmp_path / "norm")


def test_hook_name_translation():
    assert hook_to_hookpoint("blocks.7.hook_resid_post") == ("model.layers.7", 7)
    assert hook_to_hookpoint("blocks.7.hook_resid_pre") == ("model.layers.6", 6)
    assert hook_to_hookpoint("blocks.0.hook_resid_pre") == ("model.embed_tokens", None)
    assert hook_to_hookpoint("blocks.4.hook_mlp_out") == ("blocks.4.hook_mlp_out", 4)
    assert hookpoint_to_hook("model.layers.7") == "blocks.7.hook_resid_post"
