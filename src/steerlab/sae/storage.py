"""Safe file plumbing for SAE folders: atomic writes and strict, well-explained reads.

Every artifact is written into a temporary sibling and renamed into place, so a crash leaves
either the old folder or the new one, never a half-written folder that loads. Reads go through
safetensors and JSON only (never pickle) and turn every way a file can be wrong into one
``SAEFormatError`` line naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from steerlab.errors import InvalidInputError
from steerlab.tensor_files import save_safetensors

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class SAEFormatError(InvalidInputError):
    """An SAE folder or file is missing, corrupt, or does not match its config."""


def to_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    key = name.removeprefix("torch.")
    if key not in DTYPES:
        raise InvalidInputError(f"unknown {name!r}", field="dtype", allowed=", ".join(DTYPES))
    return DTYPES[key]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temp dir next to ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        for child in tmp.iterdir():  # flush file contents before the rename makes them visible
            if child.is_file():
                with open(child, "rb+") as fh:
                    os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SAEFormatError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SAEFormatError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SAEFormatError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def save_tensors(path: Path, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    save_safetensors(tensors, path, metadata)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file on CPU; any decoding problem is an SAEFormatError."""
    if not path.is_file():
        raise SAEFormatError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SAEFormatError(f"{path}: not a readable safetensors file ({reason})") from None


def check_tensors(
    path: Path,
    tensors: Mapping[str, torch.Tensor],
    expected: Mapping[str, tuple[int, ...]],
    optional: Mapping[str, tuple[int, ...]] | None = None,
) -> None:
    """Raise SAEFormatError for a missing tensor, an unexpected one, or a wrong shape."""
    optional = optional or {}
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise SAEFormatError(f"{path}: missing tensor(s) {', '.join(missing)}")
    extra = sorted(set(tensors) - set(expected) - set(optional))
    if extra:
        raise SAEFormatError(f"{path}: unexpected tensor(s) {', '.join(extra)}")
    for name, shape in {**expected, **optional}.items():
        if name in tensors and tuple(tensors[name].shape) != tuple(shape):
            raise SAEFormatError(f"{path}: tensor {name} has shape {list(tensors[name].shape)}, expected {list(shape)}")
        if name in tensors and not tensors[name].is_floating_point():
            raise SAEFormatError(f"{path}: tensor {name} has dtype {tensors[name].dtype}, expected a float")
