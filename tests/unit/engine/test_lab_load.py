"""``Lab.load`` pairs an SAE with its feature database and refuses one built for other weights."""

import pytest
import torch

from steerlab.engine.lab import Lab
from steerlab.features.identity import sae_info
from steerlab.features.store import FeatureStore
from steerlab.sae.config import SAEConfig
from steerlab.sae.variants.topk import TopKSAE


def saved_sae(folder, seed: int):
    cfg = SAEConfig(
        d_in=64, d_sae=32, architecture="topk", k=4, model_name="tiny-llama", hookpoint="model.layers.1", layer=1
    )
    sae = TopKSAE(cfg, generator=torch.Generator().manual_seed(seed)).eval()
    sae.save(folder)
    return sae


def database_for(sae, path):
    with FeatureStore(path) as store:
        store.add_sae(sae_info(sae))
    return path


def test_loads_the_database_built_for_the_sae(tiny_model_dir, tmp_path):
    sae = saved_sae(tmp_path / "sae", seed=0)
    lab = Lab.load(str(tiny_model_dir), tmp_path / "sae", database_for(sae, tmp_path / "features.db"))
    try:
        assert lab.store is not None and lab.sae_id == sae_info(sae).sae_id
    finally:
        lab.close()


def test_refuses_a_database_built_for_other_weights(tiny_model_dir, tmp_path):
    saved_sae(tmp_path / "sae", seed=0)
    other = saved_sae(tmp_path / "other", seed=1)
    db = database_for(other, tmp_path / "features.db")
    with pytest.raises(ValueError, match="describes SAE .* but the loaded SAE is .*rebuild it"):
        Lab.load(str(tiny_model_dir), tmp_path / "sae", db)


def test_in_process_client_refuses_it_too_and_names_features_as_the_lab_does(tiny_model_dir, tmp_path):
    """The in-process client runs on a Lab: the same database check, and without a database the same
    feature UUIDs as a server on that SAE (its weights' identity, not the model name)."""
    import steerlab
    from steerlab.features.schema import feature_uuid

    sae = saved_sae(tmp_path / "sae", seed=0)
    other = saved_sae(tmp_path / "other", seed=1)
    mismatched = steerlab.Client(
        model=str(tiny_model_dir), sae_path=tmp_path / "sae", db_path=database_for(other, tmp_path / "other.db")
    )
    with pytest.raises(ValueError, match="describes SAE .* but the loaded SAE is"):
        mismatched.chat.completions.create([{"role": "user", "content": "hi"}], model=str(tiny_model_dir))
    plain = steerlab.Client(model=str(tiny_model_dir), sae_path=tmp_path / "sae")
    identity = sae_info(sae).sae_id
    looked = plain.features.lookup([3], model=str(tiny_model_dir))[3]
    assert looked.uuid.replace("-", "") == feature_uuid(identity, 3).replace("-", "")
    lab = Lab.load(str(tiny_model_dir), tmp_path / "sae")
    try:
        assert lab.feature_id(3) == feature_uuid(identity, 3)
    finally:
        lab.close()
    plain._backend.lab.close()
