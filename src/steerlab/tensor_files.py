"""Write safetensors files atomically and with ordinary permissions.

``safetensors.torch.save_file`` creates files readable by their owner only (mode 600, whatever the
umask), which breaks a harvest folder, feature database or SAE shared with a colleague or a server
running as another user. Every safetensors write goes through here: temp file, mode from the umask
(644 usually), rename, so a kill never leaves a half-written file under the real name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file


def _umask() -> int:
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def save_safetensors(
    tensors: Mapping[str, torch.Tensor],
    path: str | Path,
    metadata: dict[str, str] | None = None,
) -> None:
    """Atomically write ``tensors`` (moved to CPU, made contiguous) to ``path`` with umask permissions."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
