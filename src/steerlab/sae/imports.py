"""Import SAEs published by other projects as steerlab SAEs (the same activations, the same codes).

Each reader takes the files as their project writes them and folds what we do not carry into the
weights, exactly (checked in ``tests/unit/sae/test_sae_imports.py`` against each project's formulas):

* **EleutherAI sparsify**: a folder ``cfg.json`` (``k``, ``num_latents``/``expansion_factor``, ``d_in``)
  + ``sae.safetensors`` (``encoder.weight [d_sae, d_in]``, ``encoder.bias``, ``W_dec [d_sae, d_in]``,
  ``b_dec``); TopK of ReLU(encoder(x - b_dec)). The folder's name is the hookpoint (``layers.10``).
* **Gemma Scope**: ``params.npz`` (``W_enc [d_in, d_sae]``, ``W_dec``, ``b_enc``, ``b_dec``,
  ``threshold``); JumpReLU on ``x @ W_enc + b_enc`` (no ``b_dec`` on the input: ``b_enc`` absorbs it).
  Folders are named ``layer_{L}/width_{W}/average_l0_{N}``; the SAE reads the residual after block L.
* **Llama Scope** (OpenMOSS lm_saes): ``hyperparams.json`` + ``checkpoints/final.safetensors``
  (``encoder.weight [d_sae, d_model]``, ``encoder.bias``, ``decoder.weight [d_model, d_sae]``,
  ``decoder.bias``) in its training parametrization (``save_pretrained`` writes the raw state dict). Its
  inference loader (``from_config`` in the Llama Scope release, the ``Initializer``'s inference state after
  it) first folds the dataset-wise norms (``s = sqrt(d) / norm``: ``b_E /= s_in``, ``b_D /= s_out``,
  ``W_D *= s_in / s_out``), then moves the decoder norms into the encoder (``sparsity_include_decoder_norm``:
  unit decoder columns, ``W_E`` rows and ``b_E`` times the column norms), and only then compares the
  pre-activation with the one ``jump_relu_threshold``. We fold the same way, so the codes, the scalar
  threshold and the reconstructions are that forward's (the threshold was chosen on those codes).
* **dictionary_learning** (saprmarks): ``config.json`` (``trainer.dict_class``, ``activation_dim``,
  ``dict_size``, ``k``, ``layer``, ``lm_name``) + the ``ae.pt`` state dict saved as safetensors;
  AutoEncoder (ReLU on encoder(x - bias)), AutoEncoderTopK, BatchTopKSAE (its inference threshold)
  and JumpReluAutoEncoder.
* **Goodfire** (Llama-3.1-8B-Instruct-SAE-l19, Llama-3.3-70B-Instruct-SAE-l50): the state dict
  ``encoder_linear.{weight,bias}``, ``decoder_linear.{weight,bias}`` as safetensors; ReLU on
  ``encoder_linear(x)``.

Only safetensors and ``np.load(allow_pickle=False)`` are read: a pickle (``.pt``, ``.pth``, ``.pkl``,
an npz with object arrays) can run code when loaded, so it is refused with the two lines that convert
it where it is trusted.
"""

from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from steerlab.sae.config import SAEConfig
from steerlab.sae.steerlab_format import build_from_tensors
from steerlab.sae.storage import SAEFormatError, load_tensors, read_json

FORMATS = ("sparsify", "gemma-scope", "llama-scope", "dictionary-learning", "goodfire")
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")
CONVERT_HINT = (
    "where you trust the file, convert it once: "
    "python -c \"import torch, safetensors.torch as st; sd = torch.load('{name}', map_location='cpu'); "
    "st.save_file({{k: v.contiguous() for k, v in sd.items() if hasattr(v, 'contiguous')}}, '{stem}.safetensors')\""
)


class PickleRefusedError(SAEFormatError):
    """A pickle-based file was offered: loading it could run arbitrary code."""


def refuse_pickle(path: Path) -> None:
    """Raise ``PickleRefusedError`` (with the conversion hint) when ``path`` is a pickle-based file."""
    if path.suffix.lower() in PICKLE_SUFFIXES and not path.is_dir():
        raise PickleRefusedError(
            f"{path}: steerlab does not load pickle files ({path.suffix}): unpickling can run arbitrary code; "
            + CONVERT_HINT.format(name=path.name, stem=path.stem),
            field="sae",
        )


def load_npz(path: Path) -> dict[str, Tensor]:
    """Arrays of an ``.npz`` read with ``allow_pickle=False``; object arrays are refused."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: torch.from_numpy(np.array(data[key])) for key in data.files}
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            raise PickleRefusedError(
                f"{path}: this npz holds object arrays (pickles), which steerlab does not load; save the arrays "
                "as plain numeric arrays (np.savez(out, **{k: np.asarray(v, dtype=np.float32) for k, v in ...})) "
                "or as safetensors",
                field="sae",
            ) from None
        raise SAEFormatError(f"{path}: not a readable npz file ({err})", field="sae") from None
    except (OSError, zipfile.BadZipFile) as err:
        raise SAEFormatError(f"{path}: not a readable npz file ({err})", field="sae") from None


def _tensors(path: Path) -> dict[str, Tensor]:
    refuse_pickle(path)
    if path.suffix == ".npz":
        return load_npz(path)
    if path.suffix == ".safetensors":
        return load_tensors(path)
    raise SAEFormatError(f"{path}: expected .safetensors or .npz", field="sae", allowed=".safetensors, .npz")


def _need(path: Path, tensors: dict[str, Tensor], names: tuple[str, ...]) -> dict[str, Tensor]:
    missing = [n for n in names if n not in tensors]
    if missing:
        raise SAEFormatError(
            f"{path}: missing tensor(s) {', '.join(missing)} (has: {', '.join(sorted(tensors)) or 'none'})",
            field="sae",
        )
    return {n: tensors[n].to(torch.float64) for n in names}


def _int(data: dict[str, Any], key: str, source: Path) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SAEFormatError(f"{source}: missing or non-positive integer {key!r}", field="sae")
    return value


def _layer_from(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


# ----------------------------------------------------------------------------- readers
def read_sparsify(folder: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    data = read_json(folder / "cfg.json")
    if data.get("transcode"):
        raise SAEFormatError(f"{folder}: a sparsify transcoder (transcode=true) is not an SAE steerlab reads")
    if data.get("activation", "topk") != "topk":
        raise SAEFormatError(f"{folder}: sparsify activation {data['activation']!r} is not supported (only topk)")
    d_in, k = _int(data, "d_in", folder / "cfg.json"), _int(data, "k", folder / "cfg.json")
    d_sae = data.get("num_latents") or d_in * _int(data, "expansion_factor", folder / "cfg.json")
    raw = _tensors(folder / "sae.safetensors")
    if "W_skip" in raw and bool(raw["W_skip"].abs().max() > 0):
        raise SAEFormatError(f"{folder}: sparsify skip connections (W_skip) are not supported")
    t = _need(folder / "sae.safetensors", raw, ("encoder.weight", "encoder.bias", "W_dec", "b_dec"))
    tensors = {"W_enc": t["encoder.weight"].T, "b_enc": t["encoder.bias"], "W_dec": t["W_dec"], "b_dec": t["b_dec"]}
    # sparsify names hookpoints inside the base model ("layers.10", "h.3"): read the block index
    layer = _layer_from(folder.name, r"(?:^|\.)(?:layers|h)\.(\d+)$")
    hookpoint = "" if layer is not None else folder.name
    cfg = {"d_in": d_in, "d_sae": d_sae, "architecture": "topk", "k": k, "layer": layer, "hookpoint": hookpoint}
    return cfg, tensors


def read_gemma_scope(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    file = path / "params.npz" if path.is_dir() else path
    if file.is_dir() or not file.exists():
        safet = path / "params.safetensors"
        file = safet if safet.is_file() else file
    t = _need(file, _tensors(file), ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"))
    d_in, d_sae = t["W_enc"].shape
    # Gemma Scope encodes x, we encode x - b_dec: b_enc absorbs b_dec @ W_enc
    tensors = {**t, "b_enc": t["b_enc"] + t["b_dec"] @ t["W_enc"]}
    layer = _layer_from(str(file.parent if file.parent != Path() else file), r"layer_(\d+)")
    return {"d_in": d_in, "d_sae": d_sae, "architecture": "jumprelu", "layer": layer}, tensors


def read_llama_scope(folder: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    hp_path = folder / "hyperparams.json"
    hp = read_json(hp_path)
    d_model, d_sae = _int(hp, "d_model", hp_path), _int(hp, "d_sae", hp_path)
    if hp.get("act_fn", "jumprelu") != "jumprelu":
        raise SAEFormatError(f"{hp_path}: act_fn {hp.get('act_fn')!r} is not supported (only jumprelu)")
    if hp.get("hook_point_in") != hp.get("hook_point_out"):
        raise SAEFormatError(f"{hp_path}: a transcoder (hook_point_in != hook_point_out) is not an SAE")
    weights = folder / "checkpoints" / "final.safetensors"
    if not weights.is_file():
        weights = folder / "final.safetensors"
    t = _need(weights, _tensors(weights), ("encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"))
    scale_in = scale_out = 1.0
    norm_activation = hp.get("norm_activation", "token-wise")  # missing fields take lm_saes' defaults
    if norm_activation == "dataset-wise":
        norms = hp.get("dataset_average_activation_norm") or {}
        if not isinstance(norms, dict) or not all(isinstance(norms.get(k), (int, float)) for k in ("in", "out")):
            raise SAEFormatError(f"{hp_path}: dataset-wise norm without dataset_average_activation_norm in/out")
        scale_in, scale_out = math.sqrt(d_model) / norms["in"], math.sqrt(d_model) / norms["out"]
    elif norm_activation != "inference":  # token-wise / batch-wise rescale each input: not a linear map
        raise SAEFormatError(
            f"{hp_path}: norm_activation {norm_activation!r} is not supported (dataset-wise or inference only)"
        )
    # 1. dataset-wise norms into the weights: the SAE then reads and writes the raw residual
    W_E, b_E = t["encoder.weight"], t["encoder.bias"] / scale_in
    W_D, b_D = t["decoder.weight"] * (scale_in / scale_out), t["decoder.bias"] / scale_out
    # 2. sparsity_include_decoder_norm: unit decoder columns, their norms into the encoder
    if hp.get("sparsity_include_decoder_norm", True):
        norm = W_D.norm(dim=0)
        W_D = W_D / norm.clamp_min(1e-12)
        W_E, b_E = W_E * norm[:, None], b_E * norm
    W_enc, W_dec, b_dec = W_E.T, W_D.T, b_D
    # we encode x - b_dec; lm_saes subtracts it only with apply_decoder_bias_to_pre_encoder
    b_enc = b_E if hp.get("apply_decoder_bias_to_pre_encoder", True) else b_E + b_dec @ W_enc
    # 3. the one threshold, compared with those codes
    thresholds = torch.full((d_sae,), float(hp.get("jump_relu_threshold", 0.0)), dtype=W_enc.dtype)
    layer = _layer_from(str(hp.get("hook_point_in", "")), r"blocks\.(\d+)\.hook_resid_post")
    if layer is None:
        raise SAEFormatError(
            f"{hp_path}: hook_point_in {hp.get('hook_point_in')!r} is not a residual stream (blocks.L.hook_resid_post)"
        )
    tensors = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "threshold": thresholds}
    return {"d_in": d_model, "d_sae": d_sae, "architecture": "jumprelu", "layer": layer}, tensors


def read_dictionary_learning(folder: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    cfg_path = folder / "config.json"
    trainer = read_json(cfg_path).get("trainer")
    if not isinstance(trainer, dict):
        raise SAEFormatError(f"{cfg_path}: no 'trainer' object (not a dictionary_learning config)")
    kind = trainer.get("dict_class")
    d_in, d_sae = _int(trainer, "activation_dim", cfg_path), _int(trainer, "dict_size", cfg_path)
    weights = folder / "ae.safetensors"
    if not weights.is_file():
        for pickled in (folder / "ae.pt", folder / "ae.pth"):
            if pickled.is_file():
                refuse_pickle(pickled)
        raise SAEFormatError(f"{folder}: no ae.safetensors", field="sae")
    raw = _tensors(weights)
    cfg: dict[str, Any] = {"d_in": d_in, "d_sae": d_sae, "layer": trainer.get("layer")}
    if kind == "AutoEncoder":
        t = _need(weights, raw, ("encoder.weight", "encoder.bias", "decoder.weight", "bias"))
        tensors = {"W_enc": t["encoder.weight"].T, "b_enc": t["encoder.bias"], "W_dec": t["decoder.weight"].T}
        tensors["b_dec"] = t["bias"]
        cfg["architecture"] = "relu"
    elif kind in ("AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE"):
        t = _need(weights, raw, ("encoder.weight", "encoder.bias", "decoder.weight", "b_dec"))
        tensors = {"W_enc": t["encoder.weight"].T, "b_enc": t["encoder.bias"], "W_dec": t["decoder.weight"].T}
        tensors["b_dec"] = t["b_dec"]
        if kind == "AutoEncoderTopK":
            k = int(raw["k"]) if "k" in raw else trainer.get("k")
            if not isinstance(k, int):
                raise SAEFormatError(f"{cfg_path}: a TopK SAE without an integer k")
            cfg.update(architecture="topk", k=k)
        else:  # BatchTopK at inference: a ReLU gated by its one learned threshold
            if "threshold" not in raw:
                raise SAEFormatError(f"{weights}: a BatchTopKSAE without its inference threshold")
            cfg["architecture"] = "jumprelu"
            tensors["threshold"] = raw["threshold"].to(torch.float64).reshape(-1).expand(d_sae).clone()
    elif kind == "JumpReluAutoEncoder":
        t = _need(weights, raw, ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"))
        tensors = {**t, "b_enc": t["b_enc"] + t["b_dec"] @ t["W_enc"]}  # it encodes x, not x - b_dec
        cfg["architecture"] = "jumprelu"
    else:
        raise SAEFormatError(
            f"{cfg_path}: dict_class {kind!r} is not supported",
            allowed="AutoEncoder, AutoEncoderTopK, BatchTopKSAE, MatryoshkaBatchTopKSAE, JumpReluAutoEncoder",
        )
    cfg["model_name"] = trainer.get("lm_name") or ""
    return cfg, tensors


def read_goodfire(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    if path.is_dir():
        files = sorted(path.glob("*.safetensors")) or sorted(p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if not files:
            raise SAEFormatError(f"{path}: no Goodfire SAE file (.safetensors) in this folder", field="sae")
        path = files[0]
    names = ("encoder_linear.weight", "encoder_linear.bias", "decoder_linear.weight", "decoder_linear.bias")
    t = _need(path, _tensors(path), names)
    d_sae, d_in = t["encoder_linear.weight"].shape
    W_enc, b_dec = t["encoder_linear.weight"].T, t["decoder_linear.bias"]
    tensors = {
        "W_enc": W_enc,
        "b_enc": t["encoder_linear.bias"] + b_dec @ W_enc,  # it encodes x, not x - b_dec
        "W_dec": t["decoder_linear.weight"].T,
        "b_dec": b_dec,
    }
    layer = _layer_from(path.name, r"SAE-l(\d+)")
    model = {"Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B-Instruct", "Llama-3.3-70B-Instruct": ""}
    name = next((v or f"meta-llama/{k}" for k, v in model.items() if k in path.name), "")
    return {"d_in": d_in, "d_sae": d_sae, "architecture": "relu", "layer": layer, "model_name": name}, tensors


READERS = {
    "sparsify": read_sparsify,
    "gemma-scope": read_gemma_scope,
    "llama-scope": read_llama_scope,
    "dictionary-learning": read_dictionary_learning,
    "goodfire": read_goodfire,
}


def detect_format(path: Path) -> str:
    """Which project wrote ``path`` (a folder or a file), from its file names."""
    refuse_pickle(path)
    if path.is_file():
        if path.suffix == ".npz" or path.name == "params.safetensors":
            return "gemma-scope"
        if path.suffix == ".safetensors" and "encoder_linear.weight" in _safetensors_keys(path):
            return "goodfire"
        raise SAEFormatError(
            f"{path}: cannot tell which project wrote this file; pass --from", allowed=", ".join(FORMATS)
        )
    if not path.is_dir():
        raise SAEFormatError(f"{path}: no such file or folder", field="sae")
    if (path / "hyperparams.json").is_file():
        return "llama-scope"
    if (path / "params.npz").is_file() or (path / "params.safetensors").is_file():
        return "gemma-scope"
    if (path / "config.json").is_file() and any((path / n).is_file() for n in ("ae.safetensors", "ae.pt", "ae.pth")):
        return "dictionary-learning"
    if (path / "cfg.json").is_file() and (path / "sae.safetensors").is_file():
        data = read_json(path / "cfg.json")
        if "expansion_factor" in data or "num_latents" in data:
            return "sparsify"
    files = [p for p in path.iterdir() if p.is_file()]
    if any(p.suffix in PICKLE_SUFFIXES for p in files) and not any(p.suffix == ".safetensors" for p in files):
        refuse_pickle(next(p for p in files if p.suffix in PICKLE_SUFFIXES))
    if any("encoder_linear.weight" in _safetensors_keys(p) for p in files if p.suffix == ".safetensors"):
        return "goodfire"
    raise SAEFormatError(
        f"{path}: cannot tell which project wrote this folder; pass --from", allowed=", ".join(FORMATS)
    )


def _safetensors_keys(path: Path) -> set[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return set(fh.keys())
    except Exception:  # not our business here: the reader reports a damaged file
        return set()


def import_sae(
    path: str | Path,
    fmt: str | None = None,
    *,
    model_name: str | None = None,
    layer: int | None = None,
    hookpoint: str | None = None,
    dtype: str = "float32",
) -> Any:  # an SAE (typed loosely: sae.base imports this package's registry)
    """Read ``path`` as written by ``fmt`` (detected when None) into a steerlab SAE. ``model_name``,
    ``layer`` and ``hookpoint`` fill in or override what the files say."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SAEFormatError(f"{path}: no such file or folder", field="sae")
    fmt = fmt or detect_format(path)
    if fmt not in READERS:
        raise SAEFormatError(f"unknown format {fmt!r}", field="--from", allowed=", ".join(FORMATS))
    cfg_kwargs, tensors = READERS[fmt](path)
    d_sae = int(cfg_kwargs["d_sae"])
    if layer is not None:
        cfg_kwargs["layer"] = layer
    if hookpoint:
        cfg_kwargs["hookpoint"] = hookpoint
    elif layer is not None:
        cfg_kwargs["hookpoint"] = ""
    if model_name:
        cfg_kwargs["model_name"] = model_name
    if not cfg_kwargs.get("hookpoint"):
        if cfg_kwargs.get("layer") is None:
            raise SAEFormatError(
                f"{path}: the files do not say which layer the SAE reads; pass --layer", field="--layer"
            )
        # the residual after block L, by the name Llama, Gemma, Qwen, Mistral, Phi-3 and OLMo give it (pass
        # --model to resolve it on another layout, e.g. GPT-NeoX's gpt_neox.layers.L)
        cfg_kwargs["hookpoint"] = f"model.layers.{cfg_kwargs['layer']}"
    cfg = SAEConfig(
        **cfg_kwargs,
        normalize_input=False,
        dtype=dtype,
        extra={"imported_from": fmt, "source": str(path)},
    )
    tensors = {k: v.to(torch.float64) for k, v in tensors.items()}
    tensors["feature_scale"] = torch.ones(d_sae, dtype=torch.float64)
    return build_from_tensors(cfg, tensors, path)


def check_fits_model(sae: Any, model: str) -> str:
    """Check ``sae`` against ``model``'s config (its width and its block list; no weights are loaded) and
    return the hookpoint it resolves to. A mismatch is an ``SAEFormatError`` naming both sides."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from steerlab.models.hooks import resolve_hookpoint
    from steerlab.models.loader import resolve_checkpoint

    try:
        config = AutoConfig.from_pretrained(resolve_checkpoint(model))
    except OSError as err:
        reason = str(err).splitlines()[0]
        raise SAEFormatError(f"cannot read the config of model {model!r} ({reason})", field="--model") from None
    config = getattr(config, "text_config", None) or config
    d_model = getattr(config, "hidden_size", None)
    if sae.cfg.d_in != d_model:
        raise SAEFormatError(
            f"the SAE reads d_in={sae.cfg.d_in} but model {model} has d_model={d_model}; "
            "use an SAE trained on this model",
            field="sae",
        )
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    layer, hookpoint = sae.cfg.layer, sae.cfg.hookpoint
    if layer is not None and hookpoint in ("", f"model.layers.{layer}"):  # the block, on any layout
        return resolve_hookpoint(skeleton, layer)
    return resolve_hookpoint(skeleton, hookpoint)
