"""SAEs from elsewhere: small files written the way each project writes them, imported, and checked to give
the codes and reconstructions of that project's own forward (written out here from its source)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from steerlab.models.hooks import HookpointError
from steerlab.sae.base import SAE
from steerlab.sae.imports import PickleRefusedError, check_fits_model, detect_format, import_sae
from steerlab.sae.storage import SAEFormatError

D, N = 16, 48


def _x(seed: int = 3) -> torch.Tensor:
    return torch.randn(20, D, generator=torch.Generator().manual_seed(seed)) * 2


def _rand(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _same(sae: SAE, x: torch.Tensor, codes: torch.Tensor, recon: torch.Tensor) -> None:
    with torch.no_grad():
        ours = sae.encode(x)
        assert int((codes > 0).sum()) > 0 and int((codes == 0).sum()) > 0  # a gate that does something
        torch.testing.assert_close(ours, codes, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(sae.decode(ours), recon, rtol=1e-4, atol=1e-5)


def test_sparsify_checkpoint(tmp_path):
    """sparsify's save_to_disk: cfg.json (its config + d_in) and save_model(self) -> sae.safetensors."""
    folder = tmp_path / "run" / "layers.2"
    folder.mkdir(parents=True)
    enc_w, enc_b, W_dec, b_dec = _rand(N, D, seed=0), _rand(N, seed=1) * 0.1, _rand(N, D, seed=2), _rand(D, seed=4)
    save_file(
        {"encoder.weight": enc_w, "encoder.bias": enc_b, "W_dec": W_dec, "b_dec": b_dec}, folder / "sae.safetensors"
    )
    cfg = {"activation": "topk", "expansion_factor": 3, "normalize_decoder": True, "num_latents": N, "k": 5}
    (folder / "cfg.json").write_text(json.dumps({**cfg, "multi_topk": False, "skip_connection": False, "d_in": D}))
    x = _x()
    pre = torch.relu((x - b_dec) @ enc_w.T + enc_b)  # sparsify: fused_encoder(x - b_dec), ReLU, top-k
    acts, idx = pre.topk(5)
    codes = torch.zeros_like(pre).scatter_(-1, idx, acts)
    assert detect_format(folder) == "sparsify"
    sae = import_sae(folder)
    assert sae.cfg.architecture == "topk" and sae.cfg.k == 5 and sae.cfg.layer == 2
    _same(sae, x, codes, codes @ W_dec + b_dec)
    sae.save(tmp_path / "ours")  # and it loads back as an ordinary steerlab SAE
    _same(SAE.load(tmp_path / "ours"), x, codes, codes @ W_dec + b_dec)
    with pytest.raises(SAEFormatError, match="steerlab sae import"):
        SAE.load(folder)  # loading it directly says how to import it


def _gemma_scope(tmp_path, save=np.savez):
    folder = tmp_path / "layer_3" / "width_16k" / "average_l0_20"
    folder.mkdir(parents=True)
    p = {
        "W_enc": _rand(D, N, seed=0).numpy(),
        "W_dec": _rand(N, D, seed=1).numpy(),
        "b_enc": (_rand(N, seed=2) * 0.1).numpy(),
        "b_dec": _rand(D, seed=4).numpy(),
        "threshold": np.abs(_rand(N, seed=5).numpy()) * 2,
    }
    save(folder / "params.npz", **p)
    return folder, {k: torch.from_numpy(v) for k, v in p.items()}


def test_gemma_scope_params_npz(tmp_path):
    folder, p = _gemma_scope(tmp_path)
    x = _x()
    pre = x @ p["W_enc"] + p["b_enc"]  # Gemma Scope: no b_dec on the input
    codes = (pre > p["threshold"]) * torch.relu(pre)
    sae = import_sae(folder)
    assert detect_format(folder) == "gemma-scope" and sae.cfg.architecture == "jumprelu" and sae.cfg.layer == 3
    _same(sae, x, codes, codes @ p["W_dec"] + p["b_dec"])
    _same(import_sae(folder / "params.npz"), x, codes, codes @ p["W_dec"] + p["b_dec"])  # the file alone too


def test_npz_with_object_arrays_is_refused(tmp_path):
    folder = tmp_path / "layer_1"
    folder.mkdir()
    np.savez(folder / "params.npz", W_enc=np.array([{"a": 1}], dtype=object))
    with pytest.raises(PickleRefusedError, match="object arrays"):
        import_sae(folder, "gemma-scope")


def _llama_scope(tmp_path, **hp_overrides):
    """lm_saes' save_pretrained: the raw training state dict as checkpoints/final.safetensors, and its config
    (save_hyperparameters) as hyperparams.json, with the fields of a published Llama Scope SAE."""
    folder = tmp_path / "Llama3_1-8B-Base-L1R-8x"
    (folder / "checkpoints").mkdir(parents=True)
    state = {
        "encoder.weight": _rand(N, D, seed=0),
        "encoder.bias": _rand(N, seed=1) * 0.1,
        "decoder.weight": _rand(D, N, seed=2) * 0.5,  # training leaves column norms unequal
        "decoder.bias": _rand(D, seed=4),
    }
    save_file(state, folder / "checkpoints" / "final.safetensors")
    hp = {
        "d_model": D,
        "d_sae": N,
        "hook_point_in": "blocks.1.hook_resid_post",
        "hook_point_out": "blocks.1.hook_resid_post",
        "use_decoder_bias": True,
        "apply_decoder_bias_to_pre_encoder": False,
        "act_fn": "jumprelu",
        "jump_relu_threshold": 0.3,
        "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": 7.5, "out": 7.5},  # sqrt(d) / 7.5 != 1
        "sparsity_include_decoder_norm": True,
        "top_k": 50,
        **hp_overrides,
    }
    (folder / "hyperparams.json").write_text(json.dumps(hp))
    return folder, state, hp


def _lm_saes_inference(state: dict, hp: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """lm_saes' own inference forward, written out from its source (SparseAutoEncoder.from_config in the
    Llama Scope release, 2024-10-26; Initializer state "inference" after it): fold the dataset-wise norms
    (standardize_parameters_of_dataset_activation_scaling), then the decoder norms
    (transform_to_unit_decoder_norm), then encode raw x and gate with hidden_pre.where(hidden_pre > t, 0)."""
    sd = {k: v.clone() for k, v in state.items()}
    s_in = math.sqrt(hp["d_model"]) / hp["dataset_average_activation_norm"]["in"]
    s_out = math.sqrt(hp["d_model"]) / hp["dataset_average_activation_norm"]["out"]
    sd["encoder.bias"] = sd["encoder.bias"] / s_in
    sd["decoder.bias"] = sd["decoder.bias"] / s_out
    sd["decoder.weight"] = sd["decoder.weight"] * s_in / s_out
    decoder_norm = torch.norm(sd["decoder.weight"], p=2, dim=0, keepdim=False)
    sd["decoder.weight"] = sd["decoder.weight"] / decoder_norm
    sd["encoder.weight"] = sd["encoder.weight"] * decoder_norm[:, None]
    sd["encoder.bias"] = sd["encoder.bias"] * decoder_norm
    if hp["apply_decoder_bias_to_pre_encoder"]:
        x = x - sd["decoder.bias"]
    hidden_pre = x @ sd["encoder.weight"].T + sd["encoder.bias"]
    feature_acts = hidden_pre.where(hidden_pre > hp["jump_relu_threshold"], 0)
    return feature_acts, feature_acts @ sd["decoder.weight"].T + sd["decoder.bias"]


@pytest.mark.parametrize("pre_encoder_bias", [False, True])
def test_llama_scope_codes_are_lm_saes_inference_codes(tmp_path, pre_encoder_bias):
    """The threshold is compared with codes after both folds: the dataset-wise output norm (sqrt(d)/norm_out)
    scales it too, which a gate on ``pre * |decoder column|`` in the normalized space misses."""
    folder, state, hp = _llama_scope(tmp_path, apply_decoder_bias_to_pre_encoder=pre_encoder_bias)
    x = _x()
    codes, recon = _lm_saes_inference(state, hp, x)
    sae = import_sae(folder)
    assert detect_format(folder) == "llama-scope" and sae.cfg.layer == 1 and sae.cfg.architecture == "jumprelu"
    _same(sae, x, codes, recon)
    # the case tells the conventions apart: some latents fire that a gate on pre * |column| in the normalized
    # space (= codes * s_out here) would have silenced
    s_out = math.sqrt(D) / 7.5
    assert bool(((codes > 0) & (codes * s_out <= hp["jump_relu_threshold"])).any())


def test_llama_scope_token_wise_norm_is_refused(tmp_path):
    folder, _, _ = _llama_scope(tmp_path, norm_activation="token-wise")
    with pytest.raises(SAEFormatError, match="token-wise"):
        import_sae(folder)


def _dl_folder(tmp_path, dict_class: str, tensors: dict, **trainer):
    folder = tmp_path / dict_class
    folder.mkdir()
    config = {"trainer": {"dict_class": dict_class, "activation_dim": D, "dict_size": N, "layer": 2, **trainer}}
    config["trainer"]["lm_name"] = "EleutherAI/pythia-70m-deduped"
    config["buffer"] = {"ctx_len": 128}
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tensors, folder / "ae.safetensors")
    return folder


def test_dictionary_learning_autoencoder_jumprelu_and_batchtopk(tmp_path):
    x = _x()
    enc_w, enc_b, dec_w, bias = _rand(N, D, seed=0), _rand(N, seed=1) * 0.1, _rand(D, N, seed=2), _rand(D, seed=4)
    folder = _dl_folder(
        tmp_path, "AutoEncoder", {"encoder.weight": enc_w, "encoder.bias": enc_b, "decoder.weight": dec_w, "bias": bias}
    )
    codes = torch.relu((x - bias) @ enc_w.T + enc_b)  # AutoEncoder.encode: relu(encoder(x - bias))
    assert detect_format(folder) == "dictionary-learning"
    sae = import_sae(folder)
    assert sae.cfg.architecture == "relu" and sae.cfg.model_name == "EleutherAI/pythia-70m-deduped"
    _same(sae, x, codes, codes @ dec_w.T + bias)

    W_enc, b_enc, W_dec, b_dec, thr = (
        _rand(D, N, seed=5),
        _rand(N, seed=6) * 0.1,
        _rand(N, D, seed=7),
        _rand(D, seed=8),
        torch.rand(N) * 2,
    )
    folder = _dl_folder(
        tmp_path,
        "JumpReluAutoEncoder",
        {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "threshold": thr},
    )
    pre = x @ W_enc + b_enc  # JumpReluAutoEncoder.encode: relu(x @ W_enc + b_enc) * (pre > threshold)
    codes = torch.relu(pre) * (pre > thr)
    _same(import_sae(folder), x, codes, codes @ W_dec + b_dec)

    tensors = {"encoder.weight": enc_w, "encoder.bias": enc_b, "decoder.weight": dec_w, "b_dec": bias}
    folder = _dl_folder(
        tmp_path, "BatchTopKSAE", {**tensors, "k": torch.tensor(4), "threshold": torch.tensor(1.5)}, k=4
    )
    post = torch.relu((x - bias) @ enc_w.T + enc_b)  # BatchTopKSAE.encode(use_threshold=True)
    codes = post * (post > 1.5)
    _same(import_sae(folder), x, codes, codes @ dec_w.T + bias)


def test_dictionary_learning_ae_pt_is_refused_with_a_hint(tmp_path):
    folder = tmp_path / "dl"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"trainer": {"dict_class": "AutoEncoder", "activation_dim": D, "dict_size": N}})
    )
    (folder / "ae.pt").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(PickleRefusedError, match=r"arbitrary code.*torch\.load\('ae\.pt'.*ae\.safetensors"):
        import_sae(folder)


def _goodfire(path):
    enc_w, enc_b, dec_w, dec_b = _rand(N, D, seed=0), _rand(N, seed=1) * 0.1, _rand(D, N, seed=2), _rand(D, seed=4)
    save_file(
        {
            "encoder_linear.weight": enc_w,
            "encoder_linear.bias": enc_b,
            "decoder_linear.weight": dec_w,
            "decoder_linear.bias": dec_b,
        },
        path,
    )
    return enc_w, enc_b, dec_w, dec_b


def test_goodfire_llama_sae(tmp_path):
    path = tmp_path / "Llama-3.1-8B-Instruct-SAE-l19.safetensors"
    enc_w, enc_b, dec_w, dec_b = _goodfire(path)
    x = _x()
    codes = torch.relu(x @ enc_w.T + enc_b)  # Goodfire's SAE: relu(encoder_linear(x)); decoder_linear(f)
    assert detect_format(path) == "goodfire"
    sae = import_sae(path)
    assert sae.cfg.layer == 19 and sae.cfg.model_name == "meta-llama/Llama-3.1-8B-Instruct"
    _same(sae, x, codes, codes @ dec_w.T + dec_b)


@pytest.mark.parametrize("name", ["Llama-3.1-8B-Instruct-SAE-l19.pth", "ae.pt", "sae.pkl"])
def test_pickle_files_are_refused_everywhere(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x80\x04pickle")
    with pytest.raises(PickleRefusedError, match="does not load pickle files.*safetensors"):
        import_sae(path)
    with pytest.raises(PickleRefusedError, match="does not load pickle files"):
        SAE.load(path)  # offered as --sae too


def test_sae_that_does_not_fit_the_model(tmp_path, tiny_model_dir):
    """The tiny Llama has d_model 64 and 4 blocks: a 16-wide SAE, or one at block 19, is refused clearly."""
    path = tmp_path / "Llama-3.1-8B-Instruct-SAE-l19.safetensors"
    _goodfire(path)
    with pytest.raises(SAEFormatError, match="d_in=16 but model .* has d_model=64"):
        check_fits_model(import_sae(path), str(tiny_model_dir))
    wide = tmp_path / "wide.safetensors"
    save_file(
        {
            "encoder_linear.weight": torch.randn(N, 64),
            "encoder_linear.bias": torch.zeros(N),
            "decoder_linear.weight": torch.randn(64, N),
            "decoder_linear.bias": torch.zeros(64),
        },
        wide,
    )
    with pytest.raises(HookpointError, match=r"layer must be in 0..3 .*got 19"):
        check_fits_model(import_sae(wide, "goodfire", layer=19), str(tiny_model_dir))
    assert check_fits_model(import_sae(wide, "goodfire", layer=2), str(tiny_model_dir)) == "model.layers.2"
    with pytest.raises(SAEFormatError, match="pass --layer"):
        import_sae(wide, "goodfire")  # no layer in the name: the user must say
