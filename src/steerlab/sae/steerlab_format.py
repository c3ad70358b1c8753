"""Our on-disk SAE format: a folder with ``cfg.json`` (``SAEConfig.to_dict()``) and
``sae.safetensors`` (every parameter and buffer, ``feature_scale`` included).

The layout mirrors sparsify's checkpoints, so a folder is self-describing and loads without
code from the run that made it. ``load_any`` also recognizes SAELens folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from steerlab.sae.config import SAEConfig
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
WEIGHTS_FILENAME = "sae.safetensors"
FORMAT_TAG = {"format": "steerlab-sae", "format_version": "1"}
FLOAT32_TENSORS = frozenset({"feature_scale"})  # stored and kept in float32 whatever the dtype
SPARSIFY_KEYS = frozenset({"expansion_factor", "num_latents", "multi_topk", "skip_connection"})


def save_steerlab(sae: SAE, path: str | Path, dtype: str | torch.dtype | None = None) -> Path:
    """Write ``sae`` to folder ``path`` (replacing it atomically); returns the path.

    ``dtype`` sets the storage dtype of the weights (e.g. "bfloat16" for a compact file);
    the config keeps the compute dtype, so loading upcasts back to it.
    """
    path = Path(path)
    with atomic_dir(path) as tmp:
        write_sae_files(sae, tmp, dtype=dtype)
    return path


def write_sae_files(sae: SAE, folder: Path, dtype: str | torch.dtype | None = None) -> None:
    """Write ``cfg.json`` and ``sae.safetensors`` into an existing (temporary) folder."""
    store = to_dtype(dtype) if dtype is not None else None
    tensors = {}
    for name, tensor in sae.state_dict().items():
        if name in FLOAT32_TENSORS:
            tensors[name] = tensor.float()
        else:
            tensors[name] = tensor.to(store) if store is not None else tensor
    write_json(folder / CFG_FILENAME, sae.cfg.to_dict())
    save_tensors(folder / WEIGHTS_FILENAME, tensors, metadata=dict(FORMAT_TAG))


def read_config(path: Path) -> SAEConfig:
    cfg_path = path / CFG_FILENAME
    data = read_json(cfg_path)
    if SPARSIFY_KEYS & set(data):
        raise SAEFormatError(
            f"{cfg_path}: this looks like an EleutherAI sparsify checkpoint; import it once with "
            f"'steerlab sae import {path} OUT' and use OUT"
        )
    try:
        return SAEConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise SAEFormatError(f"{cfg_path}: {exc}") from None


def build_from_tensors(
    cfg: SAEConfig,
    tensors: dict[str, torch.Tensor],
    source: Path,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> SAE:
    """Instantiate ``cfg``'s class and fill it with ``tensors`` after checking names, shapes
    and finiteness (so a damaged file fails here, not as NaNs in a generation)."""
    from steerlab.sae.registry import get_sae_class

    target = to_dtype(dtype) if dtype is not None else to_dtype(cfg.dtype)
    cfg.dtype = dtype_name(target)
    cls = get_sae_class(cfg.architecture)
    sae = cls(cfg, device="meta")
    expected = {name: tuple(t.shape) for name, t in sae.state_dict().items()}
    check_tensors(source, tensors, expected)
    state = {}
    for name, tensor in tensors.items():
        if not torch.isfinite(tensor).all():
            raise SAEFormatError(f"{source}: tensor {name} contains NaN or inf")
        want = torch.float32 if name in FLOAT32_TENSORS else target
        state[name] = tensor.to(device=device or "cpu", dtype=want)
    sae.load_state_dict(state, assign=True)
    return sae.eval()  # inference rules (BatchTopK's threshold), no training workspace


def load_steerlab(
    path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None
) -> SAE:
    """Load a folder written by ``save_steerlab``."""
    path = Path(path)
    cfg = read_config(path)
    tensors = load_tensors(path / WEIGHTS_FILENAME)
    return build_from_tensors(cfg, tensors, path / WEIGHTS_FILENAME, device=device, dtype=dtype)


def load_any(path: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> SAE:
    """Load an SAE folder in our format or SAELens's, whichever it is."""
    from steerlab.sae.imports import refuse_pickle
    from steerlab.sae.saelens_format import WEIGHTS_FILENAME as SAELENS_WEIGHTS
    from steerlab.sae.saelens_format import load_saelens

    path = Path(path)
    refuse_pickle(path)  # a .pt/.pth/.pkl offered as an SAE: refused with the conversion hint
    if not path.is_dir():
        raise SAEFormatError(f"{path}: no such SAE folder")
    if (path / WEIGHTS_FILENAME).is_file():
        return load_steerlab(path, device=device, dtype=dtype)
    if (path / SAELENS_WEIGHTS).is_file():
        return load_saelens(path, device=device, dtype=dtype)
    raise SAEFormatError(
        f"{path}: no SAE weights found (expected {WEIGHTS_FILENAME} with {CFG_FILENAME}, "
        f"or SAELens's {SAELENS_WEIGHTS})"
    )
