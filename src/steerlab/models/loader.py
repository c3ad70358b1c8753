"""Load any HF causal LM by name or local path, or the bundled default from its GGUF file.

The GGUF is de-quantized once and cached as a safetensors checkpoint under ``settings.models_dir``,
so later loads skip the slow conversion (see ``benchmarks/model_load.py`` for the two timings).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from steerlab.errors import InvalidInputError
from steerlab.models.registry import BUNDLED, GGUFSource, ModelNotFoundError, canonical_name
from steerlab.settings import get_settings

if TYPE_CHECKING:  # transformers is imported lazily at run time: it costs seconds
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger("steerlab.models")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A causal LM with its tokenizer, ready for hooks and generation."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def d_model(self) -> int:
        return self.model.config.hidden_size


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise InvalidInputError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def parse_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise InvalidInputError(f"must look like 'cpu', 'cuda' or 'cuda:N', got {device!r}", field="device") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("'cuda' was asked for but torch sees no CUDA GPU; use --device cpu", field="device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidInputError(
            f"{device!r} was asked for but torch sees {torch.cuda.device_count()} CUDA GPU(s)",
            field="device",
            allowed=", ".join(f"cuda:{i}" for i in range(torch.cuda.device_count())),
        )
    return dev


def check_dtype_on(dtype: torch.dtype, device: torch.device) -> None:
    """Refuse a dtype the device cannot compute in: bfloat16 on a GPU before Ampere (compute capability 8.0),
    whose matmuls torch would emulate or reject. CPUs compute bfloat16 (slowly without bf16 units)."""
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        raise InvalidInputError(
            f"bfloat16 is not supported on {name} (needs compute capability 8.0+)",
            field="dtype",
            allowed="float32, float16",
        )


def cache_dir_for(name: str) -> Path:
    return get_settings().models_dir / name.replace("/", "--")


def _convert_gguf(name: str, cache: Path) -> None:
    """De-quantize the bundled GGUF into a plain safetensors checkpoint, written atomically."""
    source = BUNDLED[name]
    cache.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".gguf-"))  # a chunked GGUF is assembled here
    try:
        _convert_gguf_file(name, source.locate() if isinstance(source, GGUFSource) else source.locate(workdir), cache)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _convert_gguf_file(name: str, gguf: Path, cache: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantized.config
    # transformers refuses to save a model it marked as GGUF-quantized; the weights are plain floats
    # already, so rebuild an ordinary model from the same config and copy them over.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.name_or_path = name
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".tmp-"))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "steerlab_source.json").write_text(json.dumps({"name": name, "gguf": str(gguf)}))
        if cache.exists():
            shutil.rmtree(cache)
        os.replace(tmp, cache)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_checkpoint(name_or_path: str) -> str:
    """Return what ``from_pretrained`` should load: a local folder, a converted cache, or a hub name."""
    name = canonical_name(name_or_path)
    local = Path(name).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ModelNotFoundError(f"model path {local} exists but has no config.json (not an HF model folder)")
        return str(local)
    if name in BUNDLED:
        cache = cache_dir_for(name)
        if not (cache / "config.json").is_file():
            _convert_gguf(name, cache)
        return str(cache)
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_like_path:
        raise ModelNotFoundError(f"model path {name_or_path!r} does not exist")
    return name  # an HF hub name: transformers fetches it (or finds it in the HF cache)


def load_model(
    name_or_path: str = "default",
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    packed: bool = True,
) -> LoadedModel:
    """Load a causal LM and its tokenizer; raises ModelNotFoundError with a one-line reason. ``dtype`` and
    ``device`` default to the settings (STEERLAB_DTYPE, STEERLAB_DEVICE).

    On a CPU in float32, linear layers whose weights have an exact compact form (bf16 or GGUF-style
    blocks) keep that form and multiply through ``packed_linear.py`` unless ``packed`` is False: same
    outputs up to the order of the sums, a third of the bytes read per decoded token on the default."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a sub-second weight copy needs no bar; our CLI output stays clean
    settings = get_settings()
    torch_dtype = parse_dtype(settings.dtype if dtype is None else dtype)
    dev = parse_device(settings.device if device is None else device)
    check_dtype_on(torch_dtype, dev)
    checkpoint = resolve_checkpoint(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch_dtype)
    except OSError as err:
        raise ModelNotFoundError(
            f"cannot load model {name_or_path!r}: not a local HF folder, not bundled "
            f"(bundled: {', '.join(BUNDLED)}), and not in the HF cache or reachable hub ({str(err).splitlines()[0]})"
        ) from err
    model.to(dev).eval()  # pyright: ignore[reportArgumentType]  (transformers wraps `to` with functools.wraps)
    model.requires_grad_(False)
    if packed and dev.type == "cpu" and torch_dtype == torch.float32:
        from steerlab.models.packed_linear import pack_linears

        forms = pack_linears(model)
        if forms:
            log.info("packed linear layers: %s", ", ".join(f"{n} {form}" for form, n in sorted(forms.items())))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(name=canonical_name(name_or_path), model=model, tokenizer=tokenizer)
