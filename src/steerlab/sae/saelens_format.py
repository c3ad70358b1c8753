"""Read and write SAELens's on-disk layout, so SAEs move between steerlab and SAELens.

A SAELens folder holds ``cfg.json`` and ``sae_weights.safetensors`` (``W_enc [d_in, d_sae]``,
``b_enc``, ``W_dec [d_sae, d_in]``, ``b_dec``, plus ``threshold`` for JumpReLU). Names and
shapes match ours, so conversion is mostly renaming architectures ("standard" is our relu;
our batchtopk is exported as the JumpReLU with one shared threshold it is at inference) and
folding SAELens options we do not carry into the weights, exactly:

* ``apply_b_dec_to_input=false``: SAELens encodes x, we encode x - b_dec, so b_enc absorbs
  b_dec @ W_enc;
* ``rescale_acts_by_decoder_norm`` (TopK): the decoder norms move into the encoder.

Hook names are translated between TransformerLens (``blocks.L.hook_resid_post``) and HF module
names (``model.layers.L``) where the meaning is the same. ``feature_scale`` has no SAELens
equivalent and travels in a sidecar file that SAELens ignores.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from steerlab.sae.config import SAEConfig
from steerlab.sae.steerlab_format import build_from_tensors
from steerlab.sae.storage import (
    SAEFormatError,
    atomic_dir,
    check_tensors,
    dtype_name,
    load_tensors,
    read_json,
    save_tensors,
    to_dtype,
    write_json,
)

if TYPE_CHECKING:
    from steerlab.sae.base import SAE

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
FEATURE_SCALE_FILENAME = "steerlab_feature_scale.safetensors"
FORMAT_VERSION = "6.0.0"  # the SAELens config schema we write (read without legacy conversion)
TO_OURS = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}
TO_SAELENS = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "jumprelu"}


def hook_to_hookpoint(hook_name: str) -> tuple[str, int | None]:
    """TransformerLens hook name -> (HF module name whose output it is, layer)."""
    if m := re.fullmatch(r"blocks\.(\d+)\.hook_resid_post", hook_name):
        return f"model.layers.{m.group(1)}", int(m.group(1))
    if m := re.fullmatch(r"blocks\.(\d+)\.hook_resid_pre", hook_name):
        layer = int(m.group(1)) - 1
        return (f"model.layers.{layer}", layer) if layer >= 0 else ("model.embed_tokens", None)
    m = re.match(r"blocks\.(\d+)\.", hook_name)
    return hook_name, int(m.group(1)) if m else None


def hookpoint_to_hook(hookpoint: str) -> str:
    """HF module name -> TransformerLens hook name (unchanged if there is no equivalent)."""
    if m := re.fullmatch(r"model\.layers\.(\d+)", hookpoint):
        return f"blocks.{m.group(1)}.hook_resid_post"
    return hookpoint


def _get(data: dict[str, Any], key: str) -> Any:
    """A value from the top level (SAELens <6) or ``metadata`` (SAELens 6)."""
    metadata = data.get("metadata")
    meta = metadata if isinstance(metadata, dict) else {}
    return data.get(key, meta.get(key))


def _saelens_config(data: dict[str, Any], cfg_path: Path) -> tuple[str, dict[str, Any]]:
    """(our architecture, SAEConfig kwargs) from a SAELens cfg.json dict."""
    activation_fn = data.get("activation_fn", data.get("activation_fn_str", "relu"))
    fn_kwargs = data.get("activation_fn_kwargs") or {}
    architecture = data.get("architecture") or ("topk" if activation_fn == "topk" else "standard")
    if architecture not in TO_OURS:
        raise SAEFormatError(
            f"{cfg_path}: SAELens architecture {architecture!r} is not supported; supported: {', '.join(TO_OURS)}"
        )
    if architecture == "standard" and activation_fn not in ("relu", None):
        raise SAEFormatError(f"{cfg_path}: activation_fn {activation_fn!r} is not supported (only relu)")
    for key in ("d_in", "d_sae"):
        if not isinstance(data.get(key), int):
            raise SAEFormatError(f"{cfg_path}: missing or non-integer {key!r}")
    normalize = data.get("normalize_activations") or "none"
    if normalize not in ("none", False):
        raise SAEFormatError(
            f"{cfg_path}: normalize_activations={normalize!r} is not supported; fold it into the weights first"
        )
    if (data.get("reshape_activations") or "none") != "none":
        raise SAEFormatError(f"{cfg_path}: reshape_activations={data['reshape_activations']!r} is not supported")
    hook = _get(data, "hook_name") or _get(data, "hook_point") or ""
    hookpoint, layer = hook_to_hookpoint(hook)
    if own := _get(data, "steerlab_hookpoint"):  # written by save_saelens: exact round trip
        hookpoint = own
        m = re.fullmatch(r"model\.layers\.(\d+)", own)
        layer = int(m.group(1)) if m else layer
    kwargs: dict[str, Any] = {
        "d_in": data["d_in"],
        "d_sae": data["d_sae"],
        "architecture": TO_OURS[architecture],
        "model_name": _get(data, "model_name") or "",
        "hookpoint": hookpoint,
        "layer": layer,
        "dtype": dtype_name(to_dtype(data.get("dtype") or "float32")),
        "normalize_input": False,
    }
    if architecture == "topk":
        k = data.get("k", fn_kwargs.get("k"))
        if not isinstance(k, int):
            raise SAEFormatError(f"{cfg_path}: topk SAE without an integer 'k'")
        kwargs["k"] = k
    return architecture, kwargs


def load_saelens(
    path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
) -> SAE:
    """Load a SAELens SAE folder as the equivalent steerlab SAE."""
    path = Path(path)
    cfg_path, weights_path = path / CFG_FILENAME, path / WEIGHTS_FILENAME
    data = read_json(cfg_path)
    architecture, kwargs = _saelens_config(data, cfg_path)
    try:
        cfg = SAEConfig(**kwargs)
    except ValueError as exc:
        raise SAEFormatError(f"{cfg_path}: {exc}") from None
    tensors = load_tensors(weights_path)
    d_in, d_sae = cfg.d_in, cfg.d_sae
    expected = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    optional = {"scaling_factor": (d_sae,), "finetuning_scaling_factor": (d_sae,)}
    if architecture == "jumprelu":
        key = "threshold" if "threshold" in tensors or "log_threshold" not in tensors else "log_threshold"
        expected[key] = (d_sae,)
    check_tensors(weights_path, tensors, expected, optional)
    t = {name: tensor.to(torch.float64) for name, tensor in tensors.items()}
    for name in optional:
        if name in t and not torch.allclose(t.pop(name), torch.ones(d_sae, dtype=torch.float64)):
            raise SAEFormatError(f"{weights_path}: a non-trivial {name} is not supported")
    if "log_threshold" in t:
        t["threshold"] = t.pop("log_threshold").exp()
    if data.get("apply_b_dec_to_input", True) is False:
        t["b_enc"] = t["b_enc"] + t["b_dec"] @ t["W_enc"]
    if architecture == "topk" and data.get("rescale_acts_by_decoder_norm", False):
        norms = t["W_dec"].norm(dim=1).clamp_min(1e-12)
        t["W_enc"], t["b_enc"], t["W_dec"] = t["W_enc"] * norms, t["b_enc"] * norms, t["W_dec"] / norms[:, None]
    scale_path = path / FEATURE_SCALE_FILENAME
    t["feature_scale"] = (
        load_tensors(scale_path).get("feature_scale", torch.ones(d_sae)).to(torch.float64)
        if scale_path.is_file()
        else torch.ones(d_sae, dtype=torch.float64)
    )
    return build_from_tensors(cfg, t, weights_path, device=device, dtype=dtype)


def save_saelens(sae: SAE, path: str | Path, dtype: str | torch.dtype | None = None) -> Path:
    """Write ``sae`` as a SAELens folder (``SAE.load_from_disk`` in SAELens 6 reads it)."""
    path, cfg = Path(path), sae.cfg
    store = to_dtype(dtype) if dtype is not None else sae.W_enc.dtype
    if cfg.architecture not in TO_SAELENS:
        raise SAEFormatError(f"{cfg.architecture!r} has no SAELens equivalent", field="architecture")
    state = {name: sae.state_dict()[name] for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if cfg.architecture == "jumprelu":
        state["threshold"] = sae.state_dict()["threshold"]
    elif cfg.architecture == "batchtopk":
        state["threshold"] = sae.state_dict()["threshold"].clamp_min(0).expand(cfg.d_sae)
    out_cfg: dict[str, Any] = {
        "architecture": TO_SAELENS[cfg.architecture],
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": dtype_name(store),
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": FORMAT_VERSION,
            "model_name": cfg.model_name or None,
            "hook_name": hookpoint_to_hook(cfg.hookpoint) if cfg.hookpoint else None,
            "steerlab_hookpoint": cfg.hookpoint,
        },
    }
    if cfg.architecture == "topk":
        out_cfg.update(k=cfg.k, rescale_acts_by_decoder_norm=False)
    with atomic_dir(path) as tmp:
        write_json(tmp / CFG_FILENAME, out_cfg)
        save_tensors(tmp / WEIGHTS_FILENAME, {k: v.to(store) for k, v in state.items()})
        save_tensors(tmp / FEATURE_SCALE_FILENAME, {"feature_scale": sae.feature_scale.float()})
    return path
