import os
import stat

import torch
from safetensors.torch import load_file

from steerlab.tensor_files import save_safetensors


def test_saved_files_follow_the_umask_and_replace_atomically(tmp_path):
    path = tmp_path / "x.safetensors"
    old = os.umask(0o022)
    try:
        save_safetensors({"a": torch.arange(3)}, path, metadata={"k": "v"})
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # safetensors alone writes 0o600
        save_safetensors({"a": torch.arange(5)}, path)
    finally:
        os.umask(old)
    assert load_file(str(path))["a"].tolist() == [0, 1, 2, 3, 4]
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]  # no temp files left behind
