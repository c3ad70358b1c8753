"""Our folder format: round trips, compact bf16 files, and clear errors for bad files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from steerlab.sae import SAE, SAEConfig, SAEFormatError, create_sae, list_architectures


def trained_like(arch: str) -> SAE:
    sae = create_sae(
        SAEConfig(d_in=32, d_sae=128, k=8, architecture=arch, hookpoint="model.layers.2", layer=2, model_name="tiny"),
        generator=torch.Generator().manual_seed(1),
    )
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.05 * torch.randn_like(p))
        sae.feature_scale.copy_(torch.rand(128) + 0.5)
        if arch == "batchtopk":
            sae.threshold.fill_(0.25)
    return sae.eval()


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu", "relu"])
def test_round_trip_is_exact(tmp_path, acts, arch):
    sae = trained_like(arch)
    sae.save(tmp_path / "sae")
    assert sorted(p.name for p in (tmp_path / "sae").iterdir()) == ["cfg.json", "sae.safetensors"]
    loaded = SAE.load(tmp_path / "sae")
    assert type(loaded) is type(sae) and loaded.cfg == sae.cfg
    for name, tensor in sae.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert torch.equal(loaded.encode(acts[:64]), sae.encode(acts[:64]))


def test_bf16_save_is_half_the_size_and_loads_upcast(tmp_path, acts):
    sae = trained_like("topk")
    sae.save(tmp_path / "f32")
    sae.save(tmp_path / "bf16", dtype="bfloat16")
    f32, bf16 = (tmp_path / d / "sae.safetensors" for d in ("f32", "bf16"))
    assert bf16.stat().st_size < 0.55 * f32.stat().st_size
    stored = load_file(str(bf16))
    assert stored["W_enc"].dtype == torch.bfloat16 and stored["feature_scale"].dtype == torch.float32
    loaded = SAE.load(tmp_path / "bf16")
    assert loaded.W_enc.dtype == torch.float32 and loaded.cfg.dtype == "float32"
    torch.testing.assert_close(loaded.W_dec, sae.W_dec, rtol=1e-2, atol=1e-2)
    assert torch.equal(loaded.feature_scale, sae.feature_scale)  # never rounded
    assert SAE.load(tmp_path / "bf16", dtype="bfloat16").W_enc.dtype == torch.bfloat16


def test_save_replaces_atomically(tmp_path):
    trained_like("relu").save(tmp_path / "sae")
    trained_like("topk").save(tmp_path / "sae")
    assert SAE.load(tmp_path / "sae").cfg.architecture == "topk"
    assert [p.name for p in tmp_path.iterdir()] == ["sae"]  # no temp or backup folders left


def test_load_moves_to_device_and_dtype(tmp_path):
    trained_like("jumprelu").save(tmp_path / "sae")
    sae = SAE.load(tmp_path / "sae", device="cpu", dtype=torch.float64)
    assert {p.dtype for p in sae.parameters()} == {torch.float64}
    assert sae.feature_scale.dtype == torch.float32


# ----------------------------------------------------------------------------- errors
def _saved(tmp_path):
    trained_like("topk").save(tmp_path / "sae")
    return tmp_path / "sae"


def _error(path) -> str:
    with pytest.raises(SAEFormatError) as info:
        SAE.load(path)
    message = str(info.value)
    assert "\n" not in message  # one line, fit for a CLI
    return message


def test_corrupt_safetensors(tmp_path):
    path = _saved(tmp_path)
    (path / "sae.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    assert "sae.safetensors: not a readable safetensors file" in _error(path)


def test_truncated_safetensors(tmp_path):
    path = _saved(tmp_path)
    data = (path / "sae.safetensors").read_bytes()
    (path / "sae.safetensors").write_bytes(data[: len(data) // 2])
    assert "sae.safetensors: not a readable safetensors file" in _error(path)


def test_missing_tensor(tmp_path):
    path = _saved(tmp_path)
    tensors = load_file(str(path / "sae.safetensors"))
    del tensors["b_enc"]
    save_file(tensors, str(path / "sae.safetensors"))
    assert _error(path).endswith("sae.safetensors: missing tensor(s) b_enc")


def test_shape_mismatch(tmp_path):
    path = _saved(tmp_path)
    cfg = json.loads((path / "cfg.json").read_text())
    cfg["d_sae"] = 64
    (path / "cfg.json").write_text(json.dumps(cfg))
    assert "tensor W_enc has shape [32, 128], expected [32, 64]" in _error(path)


def test_nan_weights(tmp_path):
    path = _saved(tmp_path)
    tensors = load_file(str(path / "sae.safetensors"))
    tensors["W_dec"][3, 4] = float("nan")
    save_file(tensors, str(path / "sae.safetensors"))
    assert "tensor W_dec contains NaN or inf" in _error(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "cfg.json: invalid JSON"),
        ("[1, 2]", "cfg.json: expected a JSON object"),
        (
            json.dumps({"d_in": 32, "d_sae": 128, "k": 8, "learning_rate": 1}),
            "unknown SAE config key(s): learning_rate",
        ),
        (json.dumps({"d_in": 32, "d_sae": 128, "architecture": "gated"}), "allowed: batchtopk, jumprelu, relu, topk"),
        (json.dumps({"num_latents": 128, "expansion_factor": 4, "k": 8}), "EleutherAI sparsify checkpoint"),
    ],
)
def test_bad_cfg_json(tmp_path, content, expected):
    path = _saved(tmp_path)
    (path / "cfg.json").write_text(content)
    message = _error(path)
    assert "cfg.json" in message and expected in message


def test_missing_files_and_folders(tmp_path):
    assert "no such SAE folder" in _error(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert "no SAE weights found" in _error(tmp_path / "empty")
    path = _saved(tmp_path)
    (path / "cfg.json").unlink()
    assert "cfg.json: file not found" in _error(path)


def test_every_architecture_is_saved_with_its_extra_state(tmp_path):
    names = {}
    for arch in list_architectures():
        trained_like(arch).save(tmp_path / arch)
        names[arch] = set(load_file(str(tmp_path / arch / "sae.safetensors")))
    base = {"W_enc", "b_enc", "W_dec", "b_dec", "feature_scale"}
    assert names == {"topk": base, "relu": base, "jumprelu": base | {"threshold"}, "batchtopk": base | {"threshold"}}


def test_load_for_a_model_needs_a_hookpoint_or_layer(tmp_path, tiny_lm):
    from steerlab.sae.bundled import load_sae_for

    cfg = SAEConfig(d_in=tiny_lm.d_model, d_sae=16, k=4, architecture="topk")  # neither hookpoint nor layer
    create_sae(cfg).save(tmp_path / "sae")
    with pytest.raises(SAEFormatError, match="neither a hookpoint nor a layer"):
        load_sae_for(tiny_lm, tmp_path / "sae")
