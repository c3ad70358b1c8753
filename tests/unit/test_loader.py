import pytest
import torch

from steerlab.models.loader import load_model, parse_device, parse_dtype
from steerlab.models.registry import ModelNotFoundError


def test_load_local_folder_in_both_dtypes(tiny_model_dir):
    lm = load_model(str(tiny_model_dir))
    assert lm.num_layers == 4 and lm.d_model == 64 and lm.dtype == torch.float32
    assert not any(p.requires_grad for p in lm.model.parameters())
    assert load_model(str(tiny_model_dir), dtype="bfloat16").dtype == torch.bfloat16


def test_missing_path_and_bad_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(str(tmp_path / "empty"))


def test_unknown_hub_name_offline_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="cannot load model"):
        load_model("nobody/does-not-exist-model")


def test_bad_dtype_and_device():
    with pytest.raises(ValueError, match="float32"):
        parse_dtype("int3")
    with pytest.raises(ValueError, match="device"):
        parse_device("quantum")
